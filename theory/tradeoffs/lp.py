"""l_inf versus l_1 (and l_2) robustness in the robust-feature / weak-features distribution.

Model (Tramèr & Boneh 2019, Section 2, after Tsipras et al. 2019):  y uniform on {-1, +1};
x0 = y with probability p0 and -y otherwise (the robust feature); x_1..x_d i.i.d. N(y eta, 1) with
eta = a/sqrt(d) (the weak features).  The input is x = (x0, x_1, ..., x_d) in R^(d+1).

Convention on x0: every threat perturbs the WHOLE input, x0 included (as in the paper; it is what lets
an l_1 budget of 2 flip x0).  ``perturb_x0=False`` gives the variant in which only the weak features
move.

Linear classifier f(x) = sign(w0 x0 + w.x_w + c) (a score of exactly 0 counts as an error).  With
s = y x0 (= +1 w.p. p0) and g ~ N(0, I_d), y times the score is

    M = s w0 + eta S + y c + w.g,     S = sum_i w_i,  w.g ~ N(0, |w|^2),

and the worst case over an l_p ball of radius eps lowers M by the deterministic amount
Delta = eps ||(w0, w)||_q (q dual to p; Hoelder, attained by r = -y eps sign(...) etc.).  Hence

    acc(Delta) = 1/2 sum_{y=+-1} [ p0 Phi((w0 + eta S + y c - Delta)/|w|)
                                  + (1-p0) Phi((-w0 + eta S + y c - Delta)/|w|) ]         (1)

(indicators when w = 0).  Clean: Delta = 0.  Union of threats: Delta = max_k Delta_k (the drops are
deterministic, so the per-example worst case over the union is the largest drop).  Affine combination
beta r_a + (1-beta) r_b: Delta = beta Delta_a + (1-beta) Delta_b <= max(Delta_a, Delta_b), so for linear
classifiers the affine adversary is never stronger than the union.

Mutual exclusivity (every classifier, not only linear): with eps_inf = 2 eta and eps_1 = 2 (indeed
eps_1 >= (2 - eps_inf) + d (2 eta - eps_inf)_+ suffices), acc_inf + acc_1 <= 1; the general form, with a
total-variation slack when the budgets fall short, is :func:`coupling_bound`.  Proofs: docs/tradeoffs.md.

The symmetric family sign(w0 x0 + wz z + c), z = sum_i x_i / sqrt(d) ~ N(y a, 1), carries the whole
trade-off: every linear classifier is, threat by threat, no better than a Gaussian mixture over c of a
member of this family (docs/tradeoffs.md, Lemma 2), so the frontier of the family bounds that of all
linear classifiers from below and its concave envelope bounds it from above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.special import ndtr

from ..linear.params import ParameterError
from .threats import (Threat, bias_from_psi, check_beta, check_budget, check_model_fields, concave_envelope,
                       grid_search, pareto_frontier, tail)

__all__ = ["LpModel", "LinearClassifier", "margin_drop", "accuracy_at_drop", "clean_accuracy",
           "robust_accuracy", "union_accuracy", "affine_accuracy", "coupling_bound",
           "coupling_budget_threshold", "sym_drop", "sym_accuracy", "noisy_drop", "noisy_classifier",
           "family_accuracies", "Frontier", "frontier",
           "best_union_accuracy_all_classifiers"]

LP_KINDS = ("linf", "l1", "l2")


@dataclass(frozen=True, kw_only=True)
class LpModel:
    """The distribution: d weak features with signal a (eta = a/sqrt d), robust feature correct w.p. p0."""

    d: int = 200
    a: float = 2.0
    p0: float = 0.95

    def __post_init__(self) -> None:
        check_model_fields(self)

    @property
    def eta(self) -> float:
        """Mean of a weak feature given y = +1: eta = a/sqrt(d)."""
        return self.a / math.sqrt(self.d)


@dataclass(frozen=True, eq=False)
class LinearClassifier:
    """f(x) = sign(w0 x0 + w.x_w + c); ``w`` has one weight per weak feature (shape (d,))."""

    w0: float
    w: np.ndarray
    c: float = 0.0
    _stats: tuple = field(init=False, repr=False)

    def __post_init__(self) -> None:
        w = np.array(self.w, dtype=float).ravel()
        if w.size < 1 or not np.all(np.isfinite(w)):
            raise ParameterError("w must be a non-empty vector of finite weights")
        w.setflags(write=False)
        object.__setattr__(self, "w", w)
        for name in ("w0", "c"):
            x = float(getattr(self, name))
            if not math.isfinite(x):
                raise ParameterError(f"{name} must be finite, got {getattr(self, name)!r}")
            object.__setattr__(self, name, x)
        object.__setattr__(self, "_stats", (float(w.sum()), float(np.sqrt(w @ w))))

    @classmethod
    def symmetric(cls, d: int, w0: float, wz: float, c: float = 0.0) -> "LinearClassifier":
        """sign(w0 x0 + wz z + c) with z = sum_i x_i/sqrt(d): uniform weights wz/sqrt(d)."""
        return cls(w0, np.full(int(d), float(wz) / math.sqrt(d)), c)

    @property
    def S(self) -> float:
        """Sum of the weak weights."""
        return self._stats[0]

    @property
    def sigma(self) -> float:
        """|w|: standard deviation of w.g."""
        return self._stats[1]

    def score(self, x0, xw) -> np.ndarray:
        """w0 x0 + w.x_w + c for x0 of shape (n,) and xw of shape (n, d)."""
        return self.w0 * np.asarray(x0, float) + np.asarray(xw, float) @ self.w + self.c


def _check(model: LpModel, clf: LinearClassifier) -> None:
    if clf.w.size != model.d:
        raise ParameterError(f"the classifier has {clf.w.size} weak weights but the model has d = {model.d}")


def margin_drop(clf: LinearClassifier, threat: Threat, perturb_x0: bool = True) -> float:
    """Delta = eps ||(w0, w)||_q: the worst-case drop of y*score over the threat's ball.

    linf: eps (|w0| + ||w||_1);  l1: eps max(|w0|, ||w||_inf);  l2: eps sqrt(w0^2 + |w|^2);
    without the w0 terms when ``perturb_x0`` is False.
    """
    if threat.kind not in LP_KINDS:
        raise ParameterError(f"the l_p model has threats {', '.join(LP_KINDS)}, got {threat.kind!r}")
    w0 = abs(clf.w0) if perturb_x0 else 0.0
    w = np.abs(clf.w)
    if threat.kind == "linf":
        return threat.eps * (w0 + float(w.sum()))
    if threat.kind == "l1":
        return threat.eps * max(w0, float(w.max()))
    return threat.eps * math.sqrt(w0 * w0 + float(w @ w))


def accuracy_at_drop(model: LpModel, clf: LinearClassifier, drop) -> np.ndarray:
    """Equation (1): accuracy when every example's margin y*score is lowered by ``drop`` (broadcasts)."""
    _check(model, clf)
    drop = np.asarray(drop, dtype=float)
    base = model.eta * clf.S - drop
    acc = 0.0
    for y in (1.0, -1.0):
        acc = acc + 0.5 * (model.p0 * tail(clf.w0 + base + y * clf.c, clf.sigma)
                           + (1.0 - model.p0) * tail(-clf.w0 + base + y * clf.c, clf.sigma))
    return acc


def clean_accuracy(model: LpModel, clf: LinearClassifier) -> float:
    """Accuracy on unperturbed inputs, equation (1) at Delta = 0."""
    return float(accuracy_at_drop(model, clf, 0.0))


def robust_accuracy(model: LpModel, clf: LinearClassifier, threat: Threat, perturb_x0: bool = True) -> float:
    """Accuracy against the worst case in one l_p ball: equation (1) at Delta = margin_drop."""
    return float(accuracy_at_drop(model, clf, margin_drop(clf, threat, perturb_x0)))


def union_accuracy(model: LpModel, clf: LinearClassifier, threats: Sequence[Threat],
                   perturb_x0: bool = True) -> float:
    """Accuracy against the union of the threats (per example, the worst of them): Delta = max_k Delta_k."""
    if len(threats) == 0:
        return clean_accuracy(model, clf)
    return float(accuracy_at_drop(model, clf, max(margin_drop(clf, t, perturb_x0) for t in threats)))


def affine_accuracy(model: LpModel, clf: LinearClassifier, threat_a: Threat, threat_b: Threat, beta,
                    perturb_x0: bool = True):
    """Accuracy against {beta r_a + (1-beta) r_b : r_a in ball a, r_b in ball b}.

    For a linear score min over r_a, r_b of y u.(beta r_a + (1-beta) r_b) separates, so
    Delta(beta) = beta Delta_a + (1-beta) Delta_b, linear in beta; the accuracy is equation (1) at it.
    Broadcasts over an array of beta in [0, 1].
    """
    beta_arr = np.asarray(beta, dtype=float)
    for bval in np.atleast_1d(beta_arr).ravel():
        check_beta(bval)
    da = margin_drop(clf, threat_a, perturb_x0)
    db = margin_drop(clf, threat_b, perturb_x0)
    # a convex combination lies between its end points; clipping removes the rounding of beta da + (1-beta) db
    # above max(da, db) (one ulp for da = db), which at a tie of the margin would flip the accuracy
    drop = np.clip(beta_arr * da + (1.0 - beta_arr) * db, min(da, db), max(da, db))
    out = accuracy_at_drop(model, clf, drop)
    return float(out) if out.ndim == 0 else out


# ---------------------------------------------------------------------------------------------
# Mutual exclusivity: the coupling bound for every classifier.
# ---------------------------------------------------------------------------------------------
def coupling_budget_threshold(model: LpModel, eps_inf: float) -> float:
    """Smallest l_1 budget for which the exact coupling works at l_inf budget eps_inf:

    eps_1* = (2 - min(eps_inf, 2)) + d (2 eta - eps_inf)_+ ;  at eps_inf = 2 eta it is 2 - 2 eta.
    """
    eps_inf = check_budget("eps_inf", eps_inf)
    return (2.0 - min(eps_inf, 2.0)) + model.d * max(2.0 * model.eta - eps_inf, 0.0)


def coupling_bound(model: LpModel, eps_inf: float, eps_1: float) -> float:
    """Upper bound on acc_inf(eps_inf) + acc_1(eps_1), valid for EVERY classifier (docs/tradeoffs.md, Thm 1).

    The l_inf adversary moves x0 by min(eps_inf, 2) towards -y and every weak feature by
    min(eps_inf, 2 eta); the l_1 adversary, on the coupled example of the other class, pays
    2 - min(eps_inf, 2) on x0 and spreads the rest r evenly over the weak features.  What is left is a
    gap G = (2 eta - eps_inf - r/d)_+ per weak feature between two Gaussians of identity covariance, and

        acc_inf + acc_1 <= 1 + TV = 2 Phi(G sqrt(d)/2)      (= 1 when G = 0),

    and 2 (no information) when eps_1 < 2 - min(eps_inf, 2).
    """
    eps_inf = check_budget("eps_inf", eps_inf)
    eps_1 = check_budget("eps_1", eps_1)
    r = eps_1 - (2.0 - min(eps_inf, 2.0))
    if r < 0:
        return 2.0
    G = max(2.0 * model.eta - eps_inf - r / model.d, 0.0)
    return float(min(2.0 * ndtr(0.5 * G * math.sqrt(model.d)), 2.0))


def best_union_accuracy_all_classifiers(model: LpModel, eps_inf: float, eps_1: float) -> tuple[float, float]:
    """Interval [lower, upper] for sup over ALL classifiers of the union accuracy (l_inf and l_1).

    lower = 1/2 (a constant classifier); upper = min(1, coupling_bound/2), since the union accuracy is at
    most min(acc_inf, acc_1) <= (acc_inf + acc_1)/2.  Both equal 1/2 once the coupling is exact.
    """
    return 0.5, min(1.0, 0.5 * coupling_bound(model, eps_inf, eps_1))


# ---------------------------------------------------------------------------------------------
# The symmetric family sign(w0 x0 + wz z + c), vectorised, and the Pareto frontier.
# ---------------------------------------------------------------------------------------------
def sym_drop(model: LpModel, w0, wz, threat: Threat, perturb_x0: bool = True) -> np.ndarray:
    """margin_drop of the symmetric classifier (weights wz/sqrt(d) on each weak feature), vectorised."""
    w0 = np.abs(np.asarray(w0, float)) if perturb_x0 else 0.0 * np.asarray(w0, float)
    wz = np.abs(np.asarray(wz, float))
    sd = math.sqrt(model.d)
    if threat.kind == "linf":
        return threat.eps * (w0 + sd * wz)
    if threat.kind == "l1":
        return threat.eps * np.maximum(w0, wz / sd)
    if threat.kind == "l2":
        return threat.eps * np.sqrt(w0 * w0 + wz * wz)
    raise ParameterError(f"the l_p model has threats {', '.join(LP_KINDS)}, got {threat.kind!r}")


def sym_accuracy(model: LpModel, w0, wz, c, drop, tau=0.0) -> np.ndarray:
    """Equation (1) for sign(w0 x0 + wz z + c + w_perp.g): eta S = a wz, |w|^2 = wz^2 + tau^2.

    ``tau`` = |w_perp| is the norm of the weak weights orthogonal to (1, ..., 1): pure noise in the
    score.  c may be +-inf (constant classifiers).  Vectorised over every argument.
    """
    w0, wz, c, drop, tau = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (w0, wz, c, drop, tau)))
    sig = np.sqrt(wz * wz + tau * tau)
    base = model.a * wz - drop
    acc = np.zeros(w0.shape)
    for y in (1.0, -1.0):
        acc = acc + 0.5 * (model.p0 * tail(w0 + base + y * c, sig)
                           + (1.0 - model.p0) * tail(-w0 + base + y * c, sig))
    return acc


def noisy_drop(model: LpModel, w0, wz, tau, m, threat: Threat, perturb_x0: bool = True) -> np.ndarray:
    """Drop of the linear classifier with weak weights w = (wz/sqrt d) 1 + (tau/sqrt(2m)) (1_A - 1_B).

    A, B are disjoint sets of m weak features (1 <= m <= d/2), so w_perp is orthogonal to 1 with norm tau.
    With u = wz/sqrt(d), v = tau/sqrt(2m): ||w||_1 = (d - 2m)|u| + 2m max(|u|, v), ||w||_inf = |u| + v.
    """
    w0 = np.abs(np.asarray(w0, float)) * (1.0 if perturb_x0 else 0.0)
    u = np.abs(np.asarray(wz, float)) / math.sqrt(model.d)
    tau = np.asarray(tau, float)
    m = np.asarray(m, float)
    v = tau / np.sqrt(2.0 * m)
    if threat.kind == "linf":
        return threat.eps * (w0 + (model.d - 2.0 * m) * u + 2.0 * m * np.maximum(u, v))
    if threat.kind == "l1":
        return threat.eps * np.maximum(w0, u + v)
    if threat.kind == "l2":
        return threat.eps * np.sqrt(w0 * w0 + model.d * u * u + tau * tau)
    raise ParameterError(f"the l_p model has threats {', '.join(LP_KINDS)}, got {threat.kind!r}")


def noisy_classifier(model: LpModel, w0: float, wz: float, c: float, tau: float = 0.0,
                     m: int = 1) -> LinearClassifier:
    """The explicit LinearClassifier of :func:`noisy_drop` (A = first m features, B = the next m)."""
    if tau > 0 and not 1 <= m <= model.d // 2:
        raise ParameterError(f"m must lie in [1, d/2] = [1, {model.d // 2}], got {m}")
    w = np.full(model.d, float(wz) / math.sqrt(model.d))
    if tau > 0:
        v = tau / math.sqrt(2.0 * m)
        w[:m] += v
        w[m:2 * m] -= v
    return LinearClassifier(w0, w, c)


@dataclass(frozen=True)
class Frontier:
    """Pareto frontier F(t) = max{acc_b : acc_a >= t} over a family of classifiers.

    ``F`` is achieved by actual classifiers (``w0``, ``wz``, ``c`` at each t): a lower bound on the
    family's frontier, exact up to the grid resolution; ``envelope`` is its least concave majorant, an
    upper bound on the frontier of all linear classifiers (up to the same resolution).
    """

    t: np.ndarray
    F: np.ndarray
    F_sym: np.ndarray
    envelope: np.ndarray
    w0: np.ndarray
    wz: np.ndarray
    c: np.ndarray
    tau: np.ndarray
    m: np.ndarray
    best_a: float
    best_b: float
    best_union: float
    best_sum: float
    grid: tuple[int, int, int]


def _noise_grid(model: LpModel, n_tau: int) -> list[tuple[float, int]]:
    """(tau, m) pairs: (0, 1) (the symmetric family), then tau on a log grid, m in 1, 4, 16, ..., d/2."""
    pairs = [(0.0, 1)]
    if model.d < 2 or n_tau <= 0:
        return pairs
    ms = sorted({min(4 ** k, model.d // 2) for k in range(0, 8) if 4 ** k <= 4 * (model.d // 2)})
    for tau in np.geomspace(0.05, 10.0, n_tau):
        pairs.extend((float(tau), int(m)) for m in ms)
    return pairs


def family_accuracies(model: LpModel, threat_a: Threat, threat_b: Threat, tau: float = 0.0, m: int = 1, *,
                      n_theta: int = 241, n_psi: int = 121, perturb_x0: bool = True) -> dict[str, np.ndarray]:
    """Accuracies (against a, against b, against their union) over one slice of the scanned family.

    (w0, wz) = (cos theta, sin theta), c = tan psi (psi = +-pi/2: the constant classifiers), weak noise
    (tau, m) of :func:`noisy_drop`.  Scores are scale-free, so the unit circle covers every direction.
    """
    if n_theta < 8 or n_psi < 3:
        raise ParameterError("the grid needs n_theta >= 8 and n_psi >= 3")
    TH, PS, _ = grid_search(lambda th, ps: None, n_theta, n_psi)
    w0, wz, c = np.cos(TH), np.sin(TH), bias_from_psi(PS)
    da = noisy_drop(model, w0, wz, tau, m, threat_a, perturb_x0)
    db = noisy_drop(model, w0, wz, tau, m, threat_b, perturb_x0)
    return {"A": sym_accuracy(model, w0, wz, c, da, tau), "B": sym_accuracy(model, w0, wz, c, db, tau),
            "U": sym_accuracy(model, w0, wz, c, np.maximum(da, db), tau), "w0": w0, "wz": wz, "c": c}


def frontier(model: LpModel, threat_a: Threat, threat_b: Threat, targets=None, *, n_theta: int = 241,
             n_psi: int = 121, n_tau: int = 6, perturb_x0: bool = True) -> Frontier:
    """Pareto frontier of (acc against threat_a, acc against threat_b) over linear classifiers.

    ``F_sym``: frontier of the symmetric family sign(w0 x0 + wz z + c) (the classifiers of the sufficient
    statistics).  ``F``: frontier of the scanned family with weak noise (:func:`noisy_drop`); every value
    is achieved by an explicit linear classifier, a lower bound on the frontier of all linear
    classifiers.  ``envelope``: least concave majorant of F_sym, an upper bound on it (docs/tradeoffs.md,
    Lemma 2).  All three are exact up to the grid resolution.
    """
    t = np.linspace(0.0, 1.0, 101) if targets is None else np.asarray(targets, dtype=float)
    F = np.full(t.shape, np.nan)
    F_sym = None
    arg = {k: np.full(t.shape, np.nan) for k in ("w0", "wz", "c", "tau", "m")}
    best = {"A": 0.0, "B": 0.0, "U": 0.0, "sum": 0.0}
    for tau, m in _noise_grid(model, n_tau):
        fam = family_accuracies(model, threat_a, threat_b, tau, m, n_theta=n_theta, n_psi=n_psi,
                                perturb_x0=perturb_x0)
        Fk, idx = pareto_frontier(fam["A"], fam["B"], t)
        if F_sym is None:
            F_sym = Fk.copy()
        better = np.isfinite(Fk) & ~(Fk <= F)  # F is nan or smaller
        F = np.where(better, Fk, F)
        sel = np.where(idx >= 0, idx, 0)
        for k in ("w0", "wz", "c"):
            arg[k] = np.where(better, fam[k].ravel()[sel], arg[k])
        arg["tau"] = np.where(better, tau, arg["tau"])
        arg["m"] = np.where(better, m, arg["m"])
        best["A"] = max(best["A"], float(fam["A"].max()))
        best["B"] = max(best["B"], float(fam["B"].max()))
        best["U"] = max(best["U"], float(fam["U"].max()))
        best["sum"] = max(best["sum"], float((fam["A"] + fam["B"]).max()))
    return Frontier(t=t, F=F, F_sym=F_sym, envelope=np.fmax(concave_envelope(t, F_sym), F), **arg,
                    best_a=best["A"], best_b=best["B"], best_union=best["U"], best_sum=best["sum"],
                    grid=(n_theta, n_psi, n_tau))
