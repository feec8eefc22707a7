"""Exact clean, l_inf, l_1 and union accuracy of sign(w.x - b) on the Tramer-Boneh distribution, given the
order parameters of w (notation of :mod:`theory.multinorm.params`).

With u_i = sqrt(d) w_i, ubar = (1/d) sum_i u_i, Q = sum_i w_i^2 = 1 - w0^2 and x_0 = y s (s = +1 with
probability p0, -1 otherwise), the margin of a test point is exactly Gaussian given (y, s):

    y h = w0 s + a ubar - y b + sqrt(Q) xi,      xi ~ N(0, 1)

(y xi has the law of xi).  The exact attacks of a linear model lower y h by a shift that depends on w only:

    l_inf (radius e/sqrt d):  c_inf = (e/sqrt d) |w|_1 = e (|w0|/sqrt(d) + L1),   L1 = (1/d) sum_i |u_i|
    l_1   (radius eps1):      c_1   = eps1 max(|w0|, wmax),                        wmax = max_i |w_i|
    union:                    c_U   = max(c_inf, c_1)   (per example the worst of the two; both are constant)

and a point is robust iff y h > c, so that

    A(c) = (1/2) sum_{y = +-1} [ p0 Phi((w0 + a ubar - y b - c)/sqrt Q) + (1 - p0) Phi((-w0 + a ubar - y b - c)/sqrt Q) ].

Clean accuracy A(0); the errors are E = 1 - A(0), S_inf = 1 - A(c_inf), S_1 = 1 - A(c_1), union error
1 - A(c_U).  d = inf drops the 1/sqrt(d) term of c_inf (wmax is then whatever the caller passes, 0 in the
limit).  Reference: the distribution and the attacks of F. Tramer and D. Boneh, "Adversarial training and
robustness for multiple perturbations", NeurIPS 2019, Sec. 2; the formulas follow from the Gaussian law of
sum_i w_i z_i.  Every engine of the family (theory and Monte Carlo) computes its errors through this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from .params import MultinormParams, check_d

__all__ = ["State", "shifts", "accuracy_at_shift", "accuracies", "errors", "state_from_weights", "ERROR_KEYS",
           "ACCURACY_KEYS"]

#: keys of :func:`errors` (clean, l_inf, l_1 and union error) and of :func:`accuracies`
ERROR_KEYS = ("E", "S_inf", "S_1", "union")
ACCURACY_KEYS = ("clean", "inf", "l1", "union")


@dataclass(frozen=True)
class State:
    """Order parameters of (w, b) that fix every error (scalars or arrays of one shape, e.g. over alpha).

    w0    robust weight                                  [-1, 1]
    b     threshold
    ubar  (1/d) sum_i u_i = sum_i w_i / sqrt(d)
    Q     sum_i w_i^2 (= 1 - w0^2 for |w| = 1)           >= 0
    L1    (1/d) sum_i |u_i| = sum_i |w_i| / sqrt(d)      >= 0
    wmax  max_i |w_i| over the weak weights              >= 0 (-> 0 as d -> inf)
    """

    w0: np.ndarray | float
    b: np.ndarray | float
    ubar: np.ndarray | float
    Q: np.ndarray | float
    L1: np.ndarray | float
    wmax: np.ndarray | float = 0.0


def state_from_weights(w, b) -> State:
    """The order parameters of weight vectors ``w`` (shape (..., d+1), w[..., 0] = w0) and thresholds b."""
    w = np.asarray(w, dtype=float)
    d = w.shape[-1] - 1
    weak = w[..., 1:]
    return State(w0=w[..., 0], b=np.asarray(b, dtype=float), ubar=weak.sum(-1) / math.sqrt(d),
                 Q=(weak * weak).sum(-1), L1=np.abs(weak).sum(-1) / math.sqrt(d), wmax=np.abs(weak).max(-1))


def shifts(state: State, e: float, eps1: float, d) -> tuple[np.ndarray, np.ndarray]:
    """(c_inf, c_1): how far the exact l_inf attack of radius e/sqrt(d) and the l_1 attack of radius eps1
    lower the margin y h (module docstring).  d an integer or math.inf."""
    d = check_d(d)
    aw0 = np.abs(np.asarray(state.w0, dtype=float))
    c_inf = e * (np.asarray(state.L1, dtype=float) + (0.0 if math.isinf(d) else aw0 / math.sqrt(d)))
    c_1 = eps1 * np.maximum(aw0, np.asarray(state.wmax, dtype=float))
    return c_inf, c_1


def accuracy_at_shift(state: State, c, a: float, p0: float) -> np.ndarray:
    """A(c) = P(y h > c): the probability that a test point's margin exceeds the shift c (module docstring)."""
    w0 = np.asarray(state.w0, dtype=float)
    b = np.asarray(state.b, dtype=float)
    mean = a * np.asarray(state.ubar, dtype=float) - np.asarray(c, dtype=float)
    sd = np.sqrt(np.maximum(np.asarray(state.Q, dtype=float), 0.0))
    out = 0.0
    for y in (1.0, -1.0):
        for s, ps in ((1.0, p0), (-1.0, 1.0 - p0)):
            m = w0 * s + mean - y * b
            with np.errstate(divide="ignore", invalid="ignore"):
                # Q = 0 (all weight on x_0): the margin is deterministic, robust iff m > 0
                phi = np.where(sd > 0.0, ndtr(m / np.where(sd > 0.0, sd, 1.0)), (m > 0.0).astype(float))
            out = out + 0.5 * ps * phi
    return np.asarray(out)


def accuracies(state: State, params: MultinormParams, d) -> dict[str, np.ndarray]:
    """Exact accuracies {'clean', 'inf', 'l1', 'union'} of sign(w.x - b) with the order parameters ``state``,
    against the exact l_inf (radius e/sqrt d), l_1 (radius eps1) attacks and their union; d an int or inf."""
    c_inf, c_1 = shifts(state, params.e, params.eps1, d)
    a, p0 = params.a, params.p0
    return {"clean": accuracy_at_shift(state, 0.0, a, p0), "inf": accuracy_at_shift(state, c_inf, a, p0),
            "l1": accuracy_at_shift(state, c_1, a, p0), "union": accuracy_at_shift(state, np.maximum(c_inf, c_1), a, p0)}


def errors(state: State, params: MultinormParams, d) -> dict[str, np.ndarray]:
    """Exact errors {'E' (clean), 'S_inf' (l_inf), 'S_1' (l_1), 'union'}: one minus :func:`accuracies`."""
    acc = accuracies(state, params, d)
    return {k: 1.0 - acc[j] for k, j in zip(ERROR_KEYS, ACCURACY_KEYS)}
