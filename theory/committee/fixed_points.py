"""Fixed points of the committee machine's ODEs and their stability (Jacobian by central differences)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import root

from ..core.numerics import central_jacobian
from .dynamics import rhs
from .params import CommitteeParams

__all__ = ["jacobian", "CommitteeFixedPoint", "fixed_point"]


def jacobian(y, p: CommitteeParams, h: float = 1e-6) -> np.ndarray:
    """Jacobian of :func:`rhs` by central differences."""
    return central_jacobian(lambda v: rhs(v, p), y, h)


@dataclass(frozen=True)
class CommitteeFixedPoint:
    y: np.ndarray
    eigenvalues: tuple[complex, ...]
    residual: float

    @property
    def stable(self) -> bool:
        return all(ev.real < 0 for ev in self.eigenvalues)


def fixed_point(y0, p: CommitteeParams, tol: float = 1e-10) -> CommitteeFixedPoint | None:
    """A fixed point of the ODEs near ``y0`` (MINPACK hybr), with the eigenvalues of its Jacobian, or None.

    Frozen coordinates (eta_b = 0 or eta_v = 0) are held fixed: the search runs over the moving ones."""
    y0 = np.asarray(y0, dtype=float)
    K, D = p.K, p.D
    nQ = K * (K - 1) // 2
    move = np.ones(y0.size, bool)
    if p.eta_b == 0:
        move[nQ + K * D:nQ + K * D + K] = False
    if p.eta_v == 0:
        move[nQ + K * D + K:] = False

    def F(z):
        y = y0.copy()
        y[move] = z
        return rhs(y, p)[move]

    sol = root(F, y0[move], method="hybr", tol=tol)
    if not sol.success:
        return None
    y = y0.copy()
    y[move] = sol.x
    res = float(np.max(np.abs(F(sol.x))))
    J = jacobian(y, p)[np.ix_(move, move)]
    return CommitteeFixedPoint(y, tuple(complex(e) for e in np.linalg.eigvals(J)), res)
