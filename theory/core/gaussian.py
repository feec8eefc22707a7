"""Gaussian averages of erf-type functions: closed forms and the quadratures that check them.

For y ~ N(mu, var) the closed forms used by the ODE right-hand side are

    A0 = E[exp(-y^2)]            = c1
    A1 = E[erf(y) exp(-y^2)]     = c1 erf(mu_1 / sqrt(1 + 2 var_1))
    B0 = E[exp(-2 y^2)]          = c2
    B1 = E[erf(y) exp(-2 y^2)]   = c2 erf(mu_2 / sqrt(1 + 2 var_2))
    B2 = E[erf(y)^2 exp(-2 y^2)] = c2 (1 - 8 T(h_2, 1/sqrt(1 + 4 var_2))),  h_2 = sqrt(2) mu_2/sqrt(1 + 2 var_2)

where exp(-k y^2) N(y; mu, var) = c_k N(y; mu_k, var_k), var_k = var/(1 + 2k var), mu_k = mu/(1 + 2k var),
c_k = exp(-k mu^2/(1 + 2k var))/sqrt(1 + 2k var), and T is Owen's T function.  The first two follow from
E[erf(Y)] = erf(m/sqrt(1 + 2 s^2)) for Y ~ N(m, s^2); the last from erf = 2 Phi(sqrt2 .) - 1 and the
bivariate normal orthant Phi_2(h, h; r) = Phi(h) - 2 T(h, sqrt((1 - r)/(1 + r))) (Owen 1956).

The quadratures (Gauss-Hermite on the whole line, composite Gauss-Legendre on a truncated window for
integrands with an indicator) are written here because no library vectorises them over arrays of
(mu, var) with a per-element integration window.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.special import erf, owens_t, roots_hermite, roots_legendre

__all__ = ["erf_exp_moments", "gauss_hermite_mean", "truncated_gauss_mean", "hermite_rule"]

SQRT2 = math.sqrt(2.0)


def erf_exp_moments(mu, var):
    """(A0, A1, B0, B1, B2) of the module docstring for y ~ N(mu, var); broadcasts over arrays."""
    mu = np.asarray(mu, dtype=float)
    var = np.asarray(var, dtype=float)
    d1 = 1.0 + 2.0 * var
    d2 = 1.0 + 4.0 * var
    c1 = np.exp(-(mu * mu) / d1) / np.sqrt(d1)
    c2 = np.exp(-2.0 * (mu * mu) / d2) / np.sqrt(d2)
    mu1, var1 = mu / d1, var / d1
    mu2, var2 = mu / d2, var / d2
    A1 = c1 * erf(mu1 / np.sqrt(1.0 + 2.0 * var1))
    q2 = np.sqrt(1.0 + 2.0 * var2)
    B1 = c2 * erf(mu2 / q2)
    B2 = c2 * (1.0 - 8.0 * owens_t(SQRT2 * mu2 / q2, 1.0 / np.sqrt(1.0 + 4.0 * var2)))
    return c1, A1, c2, B1, B2


@lru_cache(maxsize=8)
def hermite_rule(n: int):
    """Nodes t and weights of the n-point Gauss-Hermite rule normalised to sum 1: E[f(x)] for x ~ N(0, 1/2)
    is sum_i w_i f(t_i) (substitute x = mu + sqrt(2 var) t for N(mu, var))."""
    t, w = roots_hermite(n)
    return t, w / math.sqrt(math.pi)


def gauss_hermite_mean(fun, mu, var, n: int = 256):
    """E[fun(x)] for x ~ N(mu, var) by n-point Gauss-Hermite; fun is vectorised, mu/var broadcast.

    Needs integrands smooth on the scale of the node spacing, about sqrt(2 var)*pi/sqrt(2n): for the
    erf-exp moments with n = 256 the error is below 1e-10 for var <= 3 and grows beyond (8e-8 at var = 5).
    No indicator functions.
    """
    t, w = hermite_rule(n)
    mu = np.asarray(mu, dtype=float)[..., None]
    sd = np.sqrt(2.0 * np.asarray(var, dtype=float))[..., None]
    return np.sum(w * fun(mu + sd * t), axis=-1)


@lru_cache(maxsize=8)
def _legendre(n: int):
    return roots_legendre(n)


def truncated_gauss_mean(fun, mu, var, lower=-np.inf, upper=np.inf, panels: int = 32, n: int = 8,
                         width: float = 12.0):
    """E[fun(x) 1{lower < x < upper}] for x ~ N(mu, var), by composite Gauss-Legendre.

    The window is [mu - width sd, mu + width sd] intersected with (lower, upper), cut into ``panels``
    equal panels of ``n`` nodes each; the Gaussian mass outside +-12 sd (about 4e-33) is dropped.
    Broadcasts over mu, var, lower, upper.  Resolves integrands whose features are wider than about
    (window length)/(panels*n/4); the tests check it against scipy.integrate.quad.
    """
    mu, var, lower, upper = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (mu, var, lower, upper)))
    sd = np.sqrt(var)
    lo = np.maximum(mu - width * sd, lower)
    hi = np.minimum(mu + width * sd, upper)
    length = np.maximum(hi - lo, 0.0)
    z, wz = _legendre(n)
    # panel k covers [lo + k L/P, lo + (k+1) L/P]
    k = np.arange(panels)
    u = ((k[:, None] + 0.5 * (z[None, :] + 1.0)) / panels).ravel()  # in (0, 1)
    wu = np.tile(wz / (2.0 * panels), panels)
    x = lo[..., None] + length[..., None] * u
    dens = np.exp(-0.5 * (x - mu[..., None]) ** 2 / var[..., None]) / np.sqrt(2.0 * math.pi * var[..., None])
    return length * np.sum(wu * fun(x) * dens, axis=-1)
