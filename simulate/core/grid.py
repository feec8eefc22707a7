"""The alpha grid, the test budget and the solver tolerances: the rules every family's ODE, Monte Carlo and sweep
share.

Time unit alpha = steps/N.  The default grid is 0, step, 2 step, ... up to alpha_max plus the reported
alphas 10, 50, 200; the adversarial error S is measured at ``eps_test``, by default the training budget
(or 1, the talk's test budget, for standard training), in [0, :data:`EPS_TEST_MAX`].  The ODE solvers'
tolerances lie in :data:`RTOL_RANGE` and :data:`ATOL_RANGE` (the one range format: lo, hi, open ends, reason).
"""

from __future__ import annotations

import math

import numpy as np

from theory.params import ParameterError, check_range

__all__ = ["ALPHA_MAX", "GRID_MAX", "EPS_TEST_MAX", "default_alphas", "check_alphas", "default_eps_test",
           "check_eps_test", "RTOL_RANGE", "ATOL_RANGE", "check_tolerances"]

# Valid ranges, each with its reason.
ALPHA_MAX = 1e6          # learning time: the slowest valid relaxation (eta_w = 1e-3) is over well before
GRID_MAX = 1_000_001     # output points: 5 arrays of 8 bytes each, 40 MB; a finer grid resolves nothing more
EPS_TEST_MAX = 1e3       # test budget: beyond, S = 1 to double precision for every valid rho and v
#: the ODE solvers' tolerances (the order parameters are of order 1)
RTOL_RANGE = (1e-13, 1e-2, "[]", "below about 100 machine epsilons solve_ivp cannot honour it; above, no digit is "
                                 "right")
ATOL_RANGE = (1e-15, 1e-2, "[]", "the order parameters are of order 1: below, the solver cannot honour it; above, "
                                 "no digit is right")


def check_tolerances(rtol, atol, prefix: str = "") -> tuple[float, float]:
    """(rtol, atol) as floats in :data:`RTOL_RANGE` and :data:`ATOL_RANGE`, or ParameterError naming
    ``prefix`` + the name."""
    return check_range(prefix + "rtol", rtol, *RTOL_RANGE), check_range(prefix + "atol", atol, *ATOL_RANGE)


def default_alphas(alpha_max: float = 200.0, step: float = 1.0) -> np.ndarray:
    """0, step, 2 step, ... up to alpha_max, plus alpha = 10, 50, 200 and alpha_max itself."""
    if not (isinstance(alpha_max, (int, float)) and 0 < alpha_max <= ALPHA_MAX):
        raise ParameterError(f"alpha_max must lie in (0, {ALPHA_MAX:g}], got {alpha_max}")
    if not (isinstance(step, (int, float)) and 0 < step <= ALPHA_MAX):
        raise ParameterError(f"alpha_step must lie in (0, {ALPHA_MAX:g}], got {step}")
    if alpha_max / step + 1 > GRID_MAX:
        raise ParameterError(f"alpha_step must be at least alpha_max/{GRID_MAX - 1} = {alpha_max / (GRID_MAX - 1):.3g} "
                             f"(at most {GRID_MAX} output points, memory), got {step}")
    grid = np.arange(0.0, alpha_max + 0.5 * step, step)
    extra = [a for a in (10.0, 50.0, 200.0, alpha_max) if a <= alpha_max]
    return np.unique(np.concatenate([grid[grid <= alpha_max], extra]))


def check_alphas(alphas) -> np.ndarray:
    """``alphas`` as a float array, or ParameterError unless it is a non-empty, finite, non-decreasing grid >= 0."""
    a = np.asarray(alphas, dtype=float).ravel()
    if a.size == 0 or not np.all(np.isfinite(a)) or a[0] < 0 or np.any(np.diff(a) < 0):
        raise ParameterError("alphas must be a non-empty, finite, non-decreasing grid of values >= 0")
    return a


def default_eps_test(params) -> float:
    """The training budget ``params.eps``, or 1 (the talk's test budget) for standard training."""
    return params.eps if params.eps > 0 else 1.0


def check_eps_test(eps_test, params=None) -> float:
    """``eps_test`` (None: :func:`default_eps_test` of ``params``) as a float in [0, EPS_TEST_MAX], or ParameterError."""
    value = default_eps_test(params) if eps_test is None else eps_test
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not (
            math.isfinite(value) and 0 <= value <= EPS_TEST_MAX):
        raise ParameterError(f"eps_test must lie in [0, {EPS_TEST_MAX:g}], got {eps_test}")
    return float(value)
