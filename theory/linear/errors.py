"""Generalisation errors of the linear classifier sign(w.xi - b) in the Gaussian mixture.

For |w| = 1 the local field h = w.xi given the cluster tau is Gaussian, N(tau*rho*R/2, v_tau), so every
error is a sum of two normal CDFs (Phi).  The worst-case l2 perturbation of size eps against a unit-norm
linear classifier moves the field by eps against the label, tau*(h - b) -> tau*(h - b) - eps, hence

    E(R, b)      = p Phi((b - rho R/2)/sqrt v1) + (1-p) Phi((-b - rho R/2)/sqrt v2)        (test error)
    S(R, b, eps) = p Phi((b + eps - rho R/2)/sqrt v1) + (1-p) Phi((-b + eps - rho R/2)/sqrt v2)

with S(R, b, 0) = E(R, b).  All functions broadcast over numpy arrays of R, b and eps.
Reference: M. Straat, "Modelling adversarial training" (talk); the formulas follow from the Gaussian
law of h and are re-derived in docs/theory.md.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import ndtr

from .params import Params

__all__ = [
    "test_error",
    "adversarial_error",
    "robustness_curve",
    "bayes_error",
    "best_linear_error",
    "best_linear_adversarial_error",
]


def adversarial_error(R, b, eps, params: Params):
    """S(R, b, eps): probability that an eps-perturbed (worst case, l2) test input is misclassified."""
    R = np.asarray(R, dtype=float)
    b = np.asarray(b, dtype=float)
    eps = np.asarray(eps, dtype=float)
    m = 0.5 * params.rho * R
    e_plus = ndtr((b + eps - m) / math.sqrt(params.v1))
    e_minus = ndtr((-b + eps - m) / math.sqrt(params.v2))
    return params.prior * e_plus + (1.0 - params.prior) * e_minus


def test_error(R, b, params: Params):
    """E(R, b) = S(R, b, 0): probability that a clean test input is misclassified."""
    return adversarial_error(R, b, 0.0, params)


test_error.__test__ = False  # not a pytest test, despite its name


def robustness_curve(R: float, b: float, eps_grid, params: Params) -> np.ndarray:
    """S(eps) of a fixed state (R, b) on a grid of test budgets."""
    return adversarial_error(float(R), float(b), np.asarray(eps_grid, dtype=float), params)


def _best_threshold(eps: float, params: Params, R: float = 1.0) -> tuple[float, float]:
    """min over b of S(R, b, eps) and its argmin (b = +-inf, the constant classifier, included)."""
    const = min(params.prior, 1.0 - params.prior)  # the constant classifier: b -> +-inf
    scale = 12.0 * math.sqrt(max(params.v1, params.v2)) + 0.5 * params.rho + eps
    grid = np.linspace(-scale, scale, 2001)  # S(b) may be flat far out: bracket the minimum on a grid
    values = adversarial_error(R, grid, eps, params)
    i = int(np.argmin(values))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = minimize_scalar(
        lambda b: float(adversarial_error(R, b, eps, params)),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-12},
    )
    if res.fun < const:
        return float(res.fun), float(res.x)
    return const, (math.inf if params.prior < 0.5 else -math.inf)


def best_linear_adversarial_error(eps: float, params: Params) -> tuple[float, float]:
    """Best adversarial error of any unit-norm linear classifier at budget eps, and its threshold.

    S decreases in R, so the optimum has R = 1 (w = B); the threshold minimises
    p Phi((b + eps - rho/2)/sqrt v1) + (1-p) Phi((-b + eps - rho/2)/sqrt v2).  For v1 = v2 = v and
    eps < rho/2 it is b* = v ln((1-p)/p) / (rho - 2 eps); for eps >= rho/2 no threshold beats the
    constant classifier, error min(p, 1-p).
    """
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    return _best_threshold(float(eps), params)


def best_linear_error(params: Params) -> tuple[float, float]:
    """Best clean test error of a unit-norm linear classifier (R = 1, optimal b), and that b."""
    return _best_threshold(0.0, params)


def bayes_error(params: Params) -> float:
    """Bayes-optimal error of the classification problem restricted to the cluster axis h_B = B.xi.

    With v1 = v2 the Bayes classifier of the full N-dimensional mixture is linear along B, so this is
    the true Bayes error and equals :func:`best_linear_error`.  With v1 != v2 the optimal rule on h_B is
    quadratic (two thresholds), computed here exactly; note that in N dimensions the norm |xi|^2 ~ N v_tau
    then separates the clusters and the full Bayes error tends to 0 as N -> infinity.
    """
    p, rho, v1, v2 = params.prior, params.rho, params.v1, params.v2
    m1, m2 = rho / 2.0, -rho / 2.0
    if math.isclose(v1, v2, rel_tol=0.0, abs_tol=0.0):
        return best_linear_error(params)[0]
    # Decide +1 where p N(h; m1, v1) > (1-p) N(h; m2, v2): a quadratic a h^2 + b h + c > 0.
    a = -0.5 / v1 + 0.5 / v2
    bq = m1 / v1 - m2 / v2
    c = -0.5 * m1**2 / v1 + 0.5 * m2**2 / v2 + math.log(p / (1 - p)) - 0.5 * math.log(v1 / v2)
    disc = bq * bq - 4 * a * c
    s1, s2 = math.sqrt(v1), math.sqrt(v2)

    def mass(lo, hi, m, s):  # P(lo < h < hi) for h ~ N(m, s^2)
        return float(ndtr((hi - m) / s) - ndtr((lo - m) / s))

    if disc <= 0:  # the quadratic has one sign everywhere
        decide_plus_everywhere = a > 0
        return (1 - p) if decide_plus_everywhere else p
    r1, r2 = sorted(((-bq - math.sqrt(disc)) / (2 * a), (-bq + math.sqrt(disc)) / (2 * a)))
    if a < 0:  # +1 inside (r1, r2)
        err_plus = 1.0 - mass(r1, r2, m1, s1)
        err_minus = mass(r1, r2, m2, s2)
    else:  # +1 outside
        err_plus = mass(r1, r2, m1, s1)
        err_minus = 1.0 - mass(r1, r2, m2, s2)
    return p * err_plus + (1 - p) * err_minus
