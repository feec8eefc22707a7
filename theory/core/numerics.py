"""Small numerical helpers every family's theory uses."""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["central_jacobian"]


def central_jacobian(f: Callable[[np.ndarray], np.ndarray], y, h: float = 1e-6) -> np.ndarray:
    """d f / d y at ``y`` by central differences, column j = (f(y + h e_j) - f(y - h e_j)) / (2h); error O(h^2)
    times the third derivative (about 1e-12 relative for the smooth drifts here at h = 1e-6)."""
    y = np.asarray(y, dtype=float)
    cols = []
    for j in range(y.size):
        dy = np.zeros_like(y)
        dy[j] = h
        cols.append((np.asarray(f(y + dy), dtype=float) - np.asarray(f(y - dy), dtype=float)) / (2 * h))
    return np.stack(cols, axis=1)
