"""Scalar special functions of the Monte Carlo kernels (numba).

``dloss`` is the numba twin of :func:`theory.ode.loss_derivative` (tests compare them).  ``math`` has erfc
but not erfcx, and numba cannot call scipy.special, so erfcx is written here (exp(x^2) erfc(x) for
x < 12, its asymptotic series beyond, erfcx(-x) = 2 exp(x^2) - erfcx(x)).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["erfcx", "dloss", "dloss_array"]

_SQRT_PI = math.sqrt(math.pi)


@nb.njit(cache=True)
def _erfcx_pos(x):
    if x < 12.0:
        return math.exp(x * x) * math.erfc(x)
    # asymptotic series 1/(x sqrt pi) sum_k (-1)^k (2k-1)!!/(2x^2)^k; 10 terms: error < 1e-17 at x = 12
    t = 1.0 / (2.0 * x * x)
    s = 1.0
    term = 1.0
    for k in range(1, 11):
        term *= -(2.0 * k - 1.0) * t
        s += term
    return s / (x * _SQRT_PI)


@nb.njit(cache=True)
def erfcx(x):
    """Scaled complementary error function exp(x^2) erfc(x)."""
    if x >= 0.0:
        return _erfcx_pos(x)
    if x < -26.6:
        return math.inf
    return 2.0 * math.exp(x * x) - _erfcx_pos(-x)


@nb.njit(cache=True)
def dloss(x, tau, loss, s):
    """delta = dL/dx for sigma = erf(x/s); loss 0 = quadratic (sigma - tau)^2/2, 1 = cross-entropy."""
    y = x / s
    if loss == 0:
        return (math.erf(y) - tau) * (2.0 / (s * _SQRT_PI)) * math.exp(-y * y)
    return -tau * (2.0 / (s * _SQRT_PI)) / erfcx(-tau * y)


@nb.njit(cache=True)
def dloss_array(x, tau, loss, s):
    out = np.empty(x.size)
    for i in range(x.size):
        out[i] = dloss(x[i], tau, loss, s)
    return out

