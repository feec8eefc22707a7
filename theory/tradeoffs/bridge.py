"""Bridge: l_inf and l_1 adversarial errors of the Gaussian-mixture classifier sign(w.xi - b).

Model of :mod:`theory.params`: xi = tau (rho/2) B + sqrt(v_tau) z in R^N, |B| = 1, |w| = 1, R = w.B.
For a linear score the worst case in an l_p ball of radius eps lowers tau (w.xi - b) by eps ||w||_q
(q dual to p), so every l_p error is the l2 formula of :func:`theory.errors.adversarial_error` at the
effective budget Delta = eps ||w||_q:

    l_inf(eps_inf):  Delta = eps_inf ||w||_1,     l_1(eps_1):  Delta = eps_1 ||w||_inf.

Structure of w (assumption, stated): w = R B + sqrt(1 - R^2) w_perp with w_perp a uniformly random unit
vector orthogonal to B.  This is exact in law for online SGD from an isotropic start: the data law and
the update are equivariant under rotations that fix B, so the law of w_perp stays uniform on the
sphere of B's orthogonal complement.  For large N its coordinates are approximately i.i.d.
N(0, 1/N) (relative corrections O(1/N)), so ||w_perp||_1 ~ sqrt(2N/pi) and
||w_perp||_inf ~ sqrt(2 ln N / N).

Structure of B: 'aligned' (B = e_1), 'spread' (B_i = +-1/sqrt(N), all coordinates), or 'sparse' with a
support fraction kappa in (0, 1] (B_i = +-1/sqrt(kappa N) on kappa N coordinates; kappa = 1 is spread).

Budgets scaled with N so that the large-N limit is finite (sigma = sqrt(1 - R^2)):

  l_inf, eps_inf = eps_hat/sqrt(N):   Delta -> eps_hat * L1(R),
        aligned: L1 = sigma sqrt(2/pi);
        sparse(kappa): L1 = kappa E|R/sqrt(kappa) + sigma g| + (1 - kappa) sigma sqrt(2/pi),
        with E|mu + sigma g| = sigma sqrt(2/pi) exp(-mu^2/(2 sigma^2)) + mu (1 - 2 Phi(-mu/sigma)).
  l_1, aligned, eps_1 = eps_hat (unscaled):       Delta -> eps_hat |R|   (the coordinate of B).
  l_1, spread/sparse, eps_1 = eps_hat sqrt(N/(2 ln N)):  Delta -> eps_hat sigma  (slowly: O(1/sqrt(ln N))),
        so at finite N use :func:`expected_linf_norm`.

Derivations: docs/tradeoffs.md, Section 4.
"""

from __future__ import annotations

import math

from scipy.integrate import quad
from scipy.special import ndtr

from ..linear.errors import adversarial_error
from ..linear.params import ParameterError, Params
from .threats import check_budget

__all__ = ["STRUCTURES", "folded_normal_mean", "l1_norm_limit", "expected_l1_norm", "expected_linf_norm",
           "effective_budget", "l1_budget_scale", "lp_adversarial_error", "evaluate_state"]

STRUCTURES = ("aligned", "spread", "sparse")


def _check_structure(structure: str, kappa: float) -> float:
    if structure not in STRUCTURES:
        raise ParameterError(f"structure must be one of {', '.join(STRUCTURES)}, got {structure!r}")
    if structure == "spread":
        return 1.0
    if structure == "aligned":
        return 0.0
    k = float(kappa)
    if not (math.isfinite(k) and 0 < k <= 1):
        raise ParameterError(f"kappa (support fraction of B) must lie in (0, 1], got {kappa!r}")
    return k


def _check_R(R) -> float:
    R = float(R)
    if not (math.isfinite(R) and -1 <= R <= 1):
        raise ParameterError(f"R must lie in [-1, 1] (an overlap of unit vectors), got {R}")
    return R


def folded_normal_mean(mu: float, sigma: float) -> float:
    """E|mu + sigma g|, g ~ N(0, 1)."""
    if sigma <= 0:
        return abs(mu)
    return (sigma * math.sqrt(2.0 / math.pi) * math.exp(-0.5 * (mu / sigma) ** 2)
            + mu * (1.0 - 2.0 * float(ndtr(-mu / sigma))))


def l1_norm_limit(R: float, structure: str = "spread", kappa: float = 1.0) -> float:
    """lim ||w||_1 / sqrt(N) for w = R B + sqrt(1-R^2) w_perp (module docstring)."""
    R = _check_R(R)
    k = _check_structure(structure, kappa)
    sigma = math.sqrt(max(1.0 - R * R, 0.0))
    out = (1.0 - k) * sigma * math.sqrt(2.0 / math.pi)
    if k > 0:
        out += k * folded_normal_mean(R / math.sqrt(k), sigma)
    return out


def expected_l1_norm(R: float, N: int, structure: str = "spread", kappa: float = 1.0) -> float:
    """E||w||_1 at finite N with w_perp coordinates i.i.d. N(0, 1/N) (aligned: the B coordinate is R)."""
    R = _check_R(R)
    sigma = math.sqrt(max(1.0 - R * R, 0.0))
    if structure == "aligned":
        return abs(R) + (N - 1) * sigma * math.sqrt(2.0 / math.pi) / math.sqrt(N)
    k = _check_structure(structure, kappa)
    n_supp = max(1, int(round(k * N)))
    mu = R * math.sqrt(N / n_supp)
    return (n_supp * folded_normal_mean(mu, sigma) + (N - n_supp) * sigma * math.sqrt(2.0 / math.pi)) / math.sqrt(N)


def expected_linf_norm(R: float, N: int, structure: str = "spread", kappa: float = 1.0) -> float:
    """E||w||_inf at finite N (w_perp coordinates i.i.d. N(0, 1/N)), by one quadrature of P(max > t).

    Coordinates on the support of B are |mu + sigma g|/sqrt(N) with mu = R sqrt(N/n_supp); the others
    |sigma g|/sqrt(N).  E max = int_0^inf (1 - P(max <= t)) dt.  (aligned: mu = R sqrt(N) on one
    coordinate whose w_perp part is 0.)
    """
    R = _check_R(R)
    if N < 1:
        raise ParameterError(f"N must be >= 1, got {N}")
    sigma = math.sqrt(max(1.0 - R * R, 0.0))
    sN = math.sqrt(N)
    if structure == "aligned":
        n_supp, mu, sig_supp = 1, abs(R) * sN, 0.0
    else:
        k = _check_structure(structure, kappa)
        n_supp = max(1, int(round(k * N)))
        mu, sig_supp = abs(R) * math.sqrt(N / n_supp), sigma
    n_rest = N - n_supp

    def cdf_abs(t, m, s):  # P(|m + s g| <= t)
        if s <= 0:
            return 1.0 if abs(m) <= t else 0.0
        return float(ndtr((t - m) / s) - ndtr((-t - m) / s))

    def survival(u):  # P(max_i |.| > u) in units of 1/sqrt(N)
        p = cdf_abs(u, mu, sig_supp) ** n_supp
        if n_rest > 0:
            p *= cdf_abs(u, 0.0, sigma) ** n_rest
        return 1.0 - p

    top = abs(mu) + 12.0 * max(sigma, 1e-12) + 10.0 * max(sigma, 1e-12) * math.sqrt(2.0 * math.log(N + 1.0))
    breaks = [x for x in (abs(mu),) if 0 < x < top]
    val, _ = quad(survival, 0.0, top, points=breaks or None, limit=400, epsabs=1e-12, epsrel=1e-10)
    return val / sN


def effective_budget(threat: str, eps_hat: float, R: float, structure: str = "spread", kappa: float = 1.0,
                     N: int | None = None) -> float:
    """Delta: the effective (l2-equivalent) budget of the scaled threat, in the limit (N None) or at N.

    linf: eps_inf = eps_hat/sqrt(N); l1: eps_1 = eps_hat (aligned) or eps_hat sqrt(N/(2 ln N)) (otherwise).
    At finite N the expected norms are used; the limit drops are those of the module docstring.
    """
    eps_hat = check_budget("eps_hat", eps_hat)
    R = _check_R(R)
    k = _check_structure(structure, kappa)
    sigma = math.sqrt(max(1.0 - R * R, 0.0))
    if threat == "linf":
        if N is None:
            return eps_hat * l1_norm_limit(R, structure, kappa)
        return eps_hat * expected_l1_norm(R, N, structure, kappa) / math.sqrt(N)
    if threat == "l1":
        if N is None:
            return eps_hat * (abs(R) if k == 0.0 else sigma)
        eps_1 = eps_hat if k == 0.0 else eps_hat * l1_budget_scale(N)
        return eps_1 * expected_linf_norm(R, N, structure, kappa)
    raise ParameterError(f"threat must be 'linf' or 'l1', got {threat!r}")


def l1_budget_scale(N: int) -> float:
    """sqrt(N/(2 ln N)): the l_1 budget per unit eps_hat for spread/sparse B (N >= 2)."""
    if N < 2:
        raise ParameterError(f"N must be >= 2 for the l1 scaling, got {N}")
    return math.sqrt(N / (2.0 * math.log(N)))


def lp_adversarial_error(R, b, params: Params, threat: str, eps_hat: float, structure: str = "spread",
                         kappa: float = 1.0, N: int | None = None) -> float:
    """Adversarial error of sign(w.xi - b) (|w| = 1, R = w.B) against the scaled l_inf or l_1 threat."""
    delta = effective_budget(threat, eps_hat, R, structure, kappa, N)
    return float(adversarial_error(float(R), float(b), delta, params))


def evaluate_state(R: float, b: float, params: Params, *, eps_l2: float, eps_inf_hat: float, eps_1_hat: float,
                   structure: str = "spread", kappa: float = 1.0, N: int | None = None) -> dict[str, float]:
    """Clean, l2, l_inf and l_1 errors of one state (R, b), e.g. the end of an ODE run."""
    return {
        "E": float(adversarial_error(R, b, 0.0, params)),
        "S_l2": float(adversarial_error(R, b, check_budget("eps_l2", eps_l2), params)),
        "S_linf": lp_adversarial_error(R, b, params, "linf", eps_inf_hat, structure, kappa, N),
        "S_l1": lp_adversarial_error(R, b, params, "l1", eps_1_hat, structure, kappa, N),
        "Delta_linf": effective_budget("linf", eps_inf_hat, R, structure, kappa, N),
        "Delta_l1": effective_budget("l1", eps_1_hat, R, structure, kappa, N),
    }
