"""l_inf versus rotation-translation robustness: the ring-image distribution (our construction).

In the spirit of Tramèr & Boneh (2019, Section 2), built here so that every quantity is exact.
The input is an image of d pixels (d even) on a ring, x in R^d; rotating the ring by 2 pi k/d or
translating along it by k pixels is the cyclic shift S_k (np.roll by k).  The spatial threat "rt" with
budget t lets the adversary pick any shift |k| <= t.  With s = (+1, -1, +1, ...) (the highest
frequency) and 1 = (1, ..., 1):

    x = x0 s + y eta 1 + P g,     P = I - s s^T/d,  g ~ N(0, I_d),  eta = a/sqrt(d),

y uniform on {-1, +1}, x0 = y w.p. p0 else -y.  So the robust feature is read exactly as
x0(x) = s.x/d (noise-free: P removes the s component), the weak statistic z(x) = 1.x/sqrt(d) ~ N(y a, 1),
and the rest of the image is noise.  A one-pixel shift maps s to -s (it flips the robust feature) and
leaves 1 and the law of P g unchanged; an l_inf change of 2 eta per pixel maps the weak part of one class
onto the other's.

Classifiers: f = sign(w0 x0(x) + wz z(x) + c) (pixel weights u = w0 s/d + wz 1/sqrt(d)).  With
m = y x0 (= +1 w.p. p0), Y = y (wz z + c) ~ N(wz a + y c, wz^2):

    l_inf(eps):   robust iff m w0 + Y > Delta,  Delta = eps ||u||_1 = eps max(|w0|, sqrt(d) |wz|)
    rt(t >= 1):   robust iff Y > |w0|   (both signs of the robust feature occur among the shifts)
    union:        robust iff Y > max(Delta - m w0, |w0|)
    affine:       x' = beta (x + r) + (1 - beta) S_k x, robust iff Y + beta (m w0 - Delta) + (1 - beta) rho_m > 0
                  with rho_m = -|w0| (t >= 1) or m w0 (t = 0): a convex combination of the two margins, so
                  never stronger than the union for these (linear) classifiers.

Mutual exclusivity (every classifier): acc_inf(2 eta) + acc_rt(1) <= 1, and in general
acc_inf(eps) + acc_rt(t >= 1) <= 2 Phi((2 eta - eps)_+ sqrt(d)/2).  Proofs: docs/tradeoffs.md, Theorem 3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from ..linear.params import ParameterError
from .threats import (Threat, bias_from_psi, check_beta, check_budget, check_model_fields, concave_envelope,
                       grid_search, pareto_frontier, tail)

__all__ = ["RingModel", "RingClassifier", "ring_drop", "ring_accuracy", "ring_union_accuracy",
           "ring_affine_accuracy", "ring_coupling_bound", "RingFrontier", "ring_frontier"]


@dataclass(frozen=True, kw_only=True)
class RingModel:
    """d pixels on a ring (d even), weak signal a (eta = a/sqrt d), robust feature correct w.p. p0."""

    d: int = 200
    a: float = 2.0
    p0: float = 0.95

    def __post_init__(self) -> None:
        check_model_fields(self, d_min=2, even=True)

    @property
    def eta(self) -> float:
        return self.a / math.sqrt(self.d)

    @property
    def s(self) -> np.ndarray:
        """The robust pattern (+1, -1, +1, ...)."""
        return np.where(np.arange(self.d) % 2 == 0, 1.0, -1.0)


@dataclass(frozen=True)
class RingClassifier:
    """f(x) = sign(w0 x0(x) + wz z(x) + c), x0(x) = s.x/d, z(x) = 1.x/sqrt(d)."""

    w0: float
    wz: float
    c: float = 0.0

    def __post_init__(self) -> None:
        for name in ("w0", "wz", "c"):
            x = float(getattr(self, name))
            if not math.isfinite(x):
                raise ParameterError(f"{name} must be finite, got {getattr(self, name)!r}")
            object.__setattr__(self, name, x)

    def pixel_weights(self, model: RingModel) -> np.ndarray:
        """u with u.x = w0 x0(x) + wz z(x)."""
        return self.w0 * model.s / model.d + self.wz / math.sqrt(model.d)

    def score(self, model: RingModel, x) -> np.ndarray:
        return np.asarray(x, float) @ self.pixel_weights(model) + self.c


def ring_drop(model: RingModel, w0, wz, threat: Threat) -> np.ndarray:
    """Worst-case drop of y*score over a pixel l_p ball: eps ||u||_q with u = w0 s/d + wz 1/sqrt(d).

    linf: eps max(|w0|, sqrt(d)|wz|);  l1: eps (|w0|/d + |wz|/sqrt(d));  l2: eps sqrt(w0^2/d + wz^2).
    """
    w0 = np.abs(np.asarray(w0, float))
    wz = np.abs(np.asarray(wz, float))
    sd = math.sqrt(model.d)
    if threat.kind == "linf":
        return threat.eps * np.maximum(w0, sd * wz)
    if threat.kind == "l1":
        return threat.eps * (w0 / model.d + wz / sd)
    if threat.kind == "l2":
        return threat.eps * np.sqrt(w0 * w0 / model.d + wz * wz)
    raise ParameterError(f"ring_drop takes an l_p threat (linf, l1, l2), got {threat.kind!r}")


def _acc(model, w0, wz, c, need_plus, need_minus):
    """1/2 sum_y [p0 P(Y > need_plus) + (1-p0) P(Y > need_minus)], Y ~ N(wz a + y c, wz^2)."""
    acc = 0.0
    sig = np.abs(wz)
    for y in (1.0, -1.0):
        mean = wz * model.a + y * c
        acc = acc + 0.5 * (model.p0 * tail(mean - need_plus, sig) + (1.0 - model.p0) * tail(mean - need_minus, sig))
    return acc


def _margin_needed(w0, threat: Threat | None, model: RingModel, wz):
    """What Y must exceed for m = +1 and m = -1 against one threat (None: clean)."""
    if threat is None or (threat.kind == "rt" and threat.eps == 0):
        return -w0, w0
    if threat.kind == "rt":
        return np.abs(w0), np.abs(w0)
    D = ring_drop(model, w0, wz, threat)
    return D - w0, D + w0


def ring_accuracy(model: RingModel, clf: RingClassifier | tuple, threat: Threat | None = None):
    """Accuracy (clean if threat is None) of sign(w0 x0 + wz z + c); vectorised if clf is a tuple of arrays."""
    w0, wz, c = _unpack(clf)
    lo_p, lo_m = _margin_needed(w0, threat, model, wz)
    return _acc(model, w0, wz, c, lo_p, lo_m)


def ring_union_accuracy(model: RingModel, clf, threats) -> np.ndarray:
    """Accuracy against the union: Y must beat the largest requirement among the threats."""
    w0, wz, c = _unpack(clf)
    need_p, need_m = _margin_needed(w0, None, model, wz)
    for t in threats:
        p, m = _margin_needed(w0, t, model, wz)
        need_p, need_m = np.maximum(need_p, p), np.maximum(need_m, m)
    return _acc(model, w0, wz, c, need_p, need_m)


def ring_affine_accuracy(model: RingModel, clf, threat_inf: Threat, threat_rt: Threat, beta):
    """Accuracy against {beta (x + r) + (1 - beta) S_k x : ||r||_p <= eps, |k| <= t}, beta in [0, 1].

    The margin is beta (margin after r) + (1 - beta) (margin after S_k) and both parts are minimised
    independently, so the requirement on Y is the same convex combination of the two requirements.
    """
    beta = np.asarray(beta, dtype=float)
    for bval in np.atleast_1d(beta).ravel():
        check_beta(bval)
    if threat_rt.kind != "rt" or threat_inf.kind == "rt":
        raise ParameterError("ring_affine_accuracy takes an l_p threat and an rt threat, in that order")
    w0, wz, c = _unpack(clf)
    p1, m1 = _margin_needed(w0, threat_inf, model, wz)
    p2, m2 = _margin_needed(w0, threat_rt, model, wz)
    return _acc(model, w0, wz, c, beta * p1 + (1 - beta) * p2, beta * m1 + (1 - beta) * m2)


def _unpack(clf):
    if isinstance(clf, RingClassifier):
        return clf.w0, clf.wz, clf.c
    w0, wz, c = (np.asarray(v, dtype=float) for v in clf)
    return np.broadcast_arrays(w0, wz, c)


def ring_coupling_bound(model: RingModel, eps_inf: float, t: int) -> float:
    """Upper bound on acc_inf(eps_inf) + acc_rt(t) for EVERY classifier (docs/tradeoffs.md, Theorem 3).

    For t >= 1: 2 Phi((2 eta - eps_inf)_+ sqrt(d)/2), which is 1 once eps_inf >= 2 eta.  For t = 0 the
    spatial threat is void and the bound is the trivial 2.
    """
    eps_inf = check_budget("eps_inf", eps_inf)
    t = check_budget("t", t)
    if t < 1:
        return 2.0
    G = max(2.0 * model.eta - eps_inf, 0.0)
    return float(2.0 * ndtr(0.5 * G * math.sqrt(model.d)))


@dataclass(frozen=True)
class RingFrontier:
    """Pareto frontier max{acc_rt : acc_inf >= t} over sign(w0 x0 + wz z + c) (grid-exact lower bound)
    and its concave envelope (what Gaussian mixtures over c reach)."""

    t: np.ndarray
    F: np.ndarray
    envelope: np.ndarray
    best_inf: float
    best_rt: float
    best_union: float
    best_sum: float


def ring_frontier(model: RingModel, threat_inf: Threat, threat_rt: Threat, targets=None, *, n_theta: int = 361,
                  n_psi: int = 181) -> RingFrontier:
    """Frontier of (acc against threat_inf, acc against threat_rt) over the ring classifiers."""
    if n_theta < 8 or n_psi < 3:
        raise ParameterError("the grid needs n_theta >= 8 and n_psi >= 3")
    t = np.linspace(0.0, 1.0, 101) if targets is None else np.asarray(targets, dtype=float)
    TH, PS, _ = grid_search(lambda th, ps: None, n_theta, n_psi)
    clf = (np.cos(TH), np.sin(TH), bias_from_psi(PS))
    A = ring_accuracy(model, clf, threat_inf)
    B = ring_accuracy(model, clf, threat_rt)
    U = ring_union_accuracy(model, clf, (threat_inf, threat_rt))
    F, _ = pareto_frontier(A, B, t)
    return RingFrontier(t=t, F=F, envelope=concave_envelope(t, F), best_inf=float(A.max()),
                        best_rt=float(B.max()), best_union=float(U.max()), best_sum=float((A + B).max()))
