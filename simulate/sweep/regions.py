"""Regions of a phase diagram: where adversarial training helps, hurts or trades clean for robust error
(docs/sweeps.md gives the definitions)."""

from __future__ import annotations

import numpy as np

__all__ = ["REGION_NAMES", "regions"]

#: Region codes of :func:`regions` and their names (docs/sweeps.md gives the definitions).
REGION_NAMES = {0: "no effect", 1: "helps (trade-off)", 2: "no trade-off", 3: "hurts"}


def regions(dE, dS, tol: float = 1e-3) -> np.ndarray:
    """Region of each point from dE = E_adv - E_std and dS = S_adv - S_std (final state, same eps_test).

    hurts (3): dS > tol; no trade-off (2): dS < -tol and dE <= tol; helps with a trade-off (1): dS < -tol
    and dE > tol; no effect (0): |dS| <= tol.  NaN inputs give -1.
    """
    dE, dS = np.asarray(dE, float), np.asarray(dS, float)
    out = np.zeros(np.broadcast_shapes(dE.shape, dS.shape), dtype=np.int8)
    out[dS > tol] = 3
    better = dS < -tol
    out[better & (dE <= tol)] = 2
    out[better & (dE > tol)] = 1
    out[~(np.isfinite(dE) & np.isfinite(dS))] = -1
    return out
