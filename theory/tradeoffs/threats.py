"""Robustness trade-offs between perturbation types: threats, Pareto frontiers, and the two models.

Reference: F. Tramèr and D. Boneh, "Adversarial training and robustness for multiple perturbations",
NeurIPS 2019 (Sections 2-3).  The derivations are in docs/tradeoffs.md; the two models live in

* :mod:`theory.tradeoff_lp`      -- l_inf versus l_1 (and l_2): robust feature x0 plus d weak features;
* :mod:`theory.tradeoff_spatial` -- l_inf versus rotation-translation of a ring image;
* :mod:`theory.bridge`           -- l_inf and l_1 errors of the Gaussian-mixture classifier (R, b).

This module holds what they share: the registry of threats (a name, the dual norm that gives the margin
drop of a linear score, and the set in maths) and the Pareto-frontier / concave-envelope helpers.

Glossary
========  ===========================================================  ======================
symbol    meaning                                                      domain
========  ===========================================================  ======================
y         label, uniform on {-1, +1}
x0        robust feature, x0 = y w.p. p0, -y otherwise                 {-1, +1}
d         number of weak features                                      d >= 1
a, eta    weak-feature signal: x_i ~ N(y eta, 1), eta = a/sqrt(d)      a > 0
eps       budget of a threat (radius of its ball)                      eps >= 0
Delta     deterministic drop of y*score that the worst case achieves   Delta >= 0
beta      weight of an affine combination beta r_a + (1-beta) r_b      0 <= beta <= 1
========  ===========================================================  ======================
Pure mathematics: numpy/scipy, no randomness, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..linear.params import ParameterError

__all__ = ["Threat", "THREATS", "dual_norm", "pareto_frontier", "concave_envelope", "check_prob",
           "check_budget", "check_beta", "grid_search", "bias_from_psi", "tail"]


@dataclass(frozen=True)
class _ThreatKind:
    name: str
    set_in_maths: str
    dual: str  # the dual norm that gives the worst-case drop of a linear score

#: Registry of threat models.  For a linear score s(x) = u.x + c the worst case over an l_p ball of
#: radius eps lowers y*s by exactly eps*||u||_q with 1/p + 1/q = 1 (Hoelder, attained).
THREATS = {
    "linf": _ThreatKind("linf", "{r : max_i |r_i| <= eps}", "l1"),
    "l1": _ThreatKind("l1", "{r : sum_i |r_i| <= eps}", "linf"),
    "l2": _ThreatKind("l2", "{r : sqrt(sum_i r_i^2) <= eps}", "l2"),
    "rt": _ThreatKind("rt", "{x -> S_k x : |k| <= eps}  (cyclic shifts of a ring image, eps in pixels)", "-"),
}


def check_budget(name: str, eps) -> float:
    x = float(eps)
    if not (math.isfinite(x) and x >= 0):
        raise ParameterError(f"{name} must be finite and >= 0, got {eps!r}")
    return x


def check_prob(name: str, p, lo: float = 0.0, hi: float = 1.0) -> float:
    x = float(p)
    if not (math.isfinite(x) and lo <= x <= hi):
        raise ParameterError(f"{name} must lie in [{lo}, {hi}], got {p!r}")
    return x


def check_model_fields(model, d_min: int = 1, even: bool = False) -> None:
    """Validate and normalise the fields d, a, p0 shared by the frozen trade-off models (in place)."""
    d = model.d
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < d_min or (even and d % 2):
        what = f"an even integer >= {d_min} (pixels on the ring)" if even else f"an integer >= {d_min}"
        raise ParameterError(f"d must be {what}, got {d!r}")
    object.__setattr__(model, "d", int(d))
    a = float(model.a)
    if not (math.isfinite(a) and a > 0):
        raise ParameterError(f"a must be finite and > 0, got {model.a!r}")
    object.__setattr__(model, "a", a)
    object.__setattr__(model, "p0", check_prob("p0", model.p0))


def check_beta(beta) -> float:
    return check_prob("beta", beta)


@dataclass(frozen=True)
class Threat:
    """A threat model: ``kind`` in THREATS and its budget ``eps`` (pixels for 'rt', a norm otherwise)."""

    kind: str
    eps: float

    def __post_init__(self) -> None:
        if self.kind not in THREATS:
            raise ParameterError(f"threat kind must be one of {', '.join(THREATS)}, got {self.kind!r}")
        object.__setattr__(self, "eps", check_budget(f"eps of the {self.kind} threat", self.eps))
        if self.kind == "rt" and self.eps != int(self.eps):
            raise ParameterError(f"eps of the rt threat is a whole number of pixels, got {self.eps}")


def dual_norm(kind: str, u) -> np.ndarray:
    """||u||_q along the last axis, q the dual exponent of the threat ``kind`` (linf -> l1, l1 -> linf)."""
    u = np.abs(np.asarray(u, dtype=float))
    dual = THREATS[kind].dual
    if dual == "l1":
        return u.sum(axis=-1)
    if dual == "linf":
        return u.max(axis=-1, initial=0.0)
    if dual == "l2":
        return np.sqrt((u * u).sum(axis=-1))
    raise ParameterError(f"threat {kind!r} is not an l_p ball")


def pareto_frontier(acc_a, acc_b, targets) -> tuple[np.ndarray, np.ndarray]:
    """F(t) = max{acc_b : acc_a >= t} over a finite set of achieved pairs, at each target t.

    Returns (F, index of the maximiser); F = nan where no pair reaches t.  Each value is achieved by
    an actual member of the family, so on a grid of the family this is a lower bound on the frontier.
    """
    a = np.asarray(acc_a, dtype=float).ravel()
    b = np.asarray(acc_b, dtype=float).ravel()
    order = np.argsort(-a, kind="stable")
    a_sorted, b_sorted = a[order], b[order]
    best = np.maximum.accumulate(b_sorted)
    arg = order[_running_argmax(b_sorted)]
    t = np.asarray(targets, dtype=float)
    # number of pairs with acc_a >= t (a_sorted is descending)
    k = np.searchsorted(-a_sorted, -t, side="right")
    F = np.where(k > 0, best[np.maximum(k - 1, 0)], np.nan)
    idx = np.where(k > 0, arg[np.maximum(k - 1, 0)], -1)
    return F, idx


def _running_argmax(x: np.ndarray) -> np.ndarray:
    """Index of the first maximum of x[:i+1], for every i (vectorised)."""
    running = np.maximum.accumulate(x)
    is_new = np.concatenate([[True], running[1:] > running[:-1]])
    return np.maximum.accumulate(np.where(is_new, np.arange(x.size), 0))


def concave_envelope(t, F) -> np.ndarray:
    """The least concave majorant of the points (t_i, F_i) (t increasing), evaluated at the t_i.

    Used because mixtures over the bias of a linear score (Gaussian noise added to the score, see
    docs/tradeoffs.md) reach the concave envelope of the deterministic frontier, never beyond it.
    """
    t = np.asarray(t, dtype=float)
    F = np.asarray(F, dtype=float)
    ok = np.isfinite(F)
    tt, ff = t[ok], F[ok]
    hull: list[int] = []  # upper hull by the monotone chain
    for i in range(tt.size):
        while len(hull) >= 2:
            i1, i2 = hull[-2], hull[-1]
            cross = (tt[i2] - tt[i1]) * (ff[i] - ff[i1]) - (ff[i2] - ff[i1]) * (tt[i] - tt[i1])
            if cross >= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    out = np.full(t.shape, np.nan)
    out[ok] = np.interp(tt, tt[hull], ff[hull])
    return out


def tail(mean, sigma) -> np.ndarray:
    """P(mean + sigma g > 0) for g ~ N(0, 1); for sigma = 0 the indicator mean > 0 (a tie is an error)."""
    from scipy.special import ndtr

    mean, sigma = np.broadcast_arrays(np.asarray(mean, dtype=float), np.asarray(sigma, dtype=float))
    pos = sigma > 0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        z = np.where(pos, mean / np.where(pos, sigma, 1.0), 0.0)
    return np.where(pos, ndtr(z), (mean > 0).astype(float))


def grid_search(fun: Callable[[np.ndarray, np.ndarray], np.ndarray], n_theta: int, n_psi: int):
    """Evaluate ``fun(theta, psi)`` on the grid theta in [0, 2 pi), psi in [-pi/2, pi/2] (both ends)."""
    theta = np.linspace(0.0, 2.0 * math.pi, n_theta, endpoint=False)
    psi = np.linspace(-0.5 * math.pi, 0.5 * math.pi, n_psi)
    TH, PS = np.meshgrid(theta, psi, indexing="ij")
    return TH, PS, fun(TH, PS)


def bias_from_psi(psi) -> np.ndarray:
    """c = tan(psi), with c = -inf / +inf (the constant classifiers) at psi = -pi/2 / +pi/2."""
    psi = np.asarray(psi, dtype=float)
    c = np.tan(psi)
    c = np.where(psi <= -0.5 * math.pi, -np.inf, c)
    return np.where(psi >= 0.5 * math.pi, np.inf, c)
