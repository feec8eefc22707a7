"""Closed-form Gaussian averages against adaptive quadrature, and the quadratures against each other."""

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from scipy.integrate import quad
from scipy.special import erf

from theory.gaussian import erf_exp_moments, gauss_hermite_mean, truncated_gauss_mean

from .strategies import log_uniform
from .tolerances import CLOSED_VS_QUAD, QUADRATURE_VS_QUAD, report

INTEGRANDS = (
    lambda y: np.exp(-y * y),
    lambda y: erf(y) * np.exp(-y * y),
    lambda y: np.exp(-2 * y * y),
    lambda y: erf(y) * np.exp(-2 * y * y),
    lambda y: erf(y) ** 2 * np.exp(-2 * y * y),
)


def _quad_mean(f, mu, var, lower=-np.inf, upper=np.inf):
    sd = math.sqrt(var)
    lo, hi = max(mu - 14 * sd, lower), min(mu + 14 * sd, upper)
    if hi <= lo:
        return 0.0
    dens = lambda y: math.exp(-0.5 * (y - mu) ** 2 / var) / math.sqrt(2 * math.pi * var)  # noqa: E731
    return quad(lambda y: float(f(y)) * dens(y), lo, hi, epsabs=1e-14, epsrel=1e-12, limit=200)[0]


@given(mu=st.floats(-6, 6), var=log_uniform(0.1, 5.0))
@example(mu=0.0, var=0.1)
@example(mu=-6.0, var=5.0)
def test_closed_forms_equal_quadrature(mu, var):
    closed = erf_exp_moments(mu, var)
    for f, c in zip(INTEGRANDS, closed):
        q = _quad_mean(f, mu, var)
        assert abs(float(c) - q) < CLOSED_VS_QUAD, report("erf-exp moment", c, q)


def test_closed_form_catches_a_wrong_owen_t_argument():
    # The B2 formula with a wrong second argument of Owen's T is visibly off: the test above can fail.
    from scipy.special import owens_t

    mu, var = 0.7, 1.3
    d2 = 1 + 4 * var
    c2 = math.exp(-2 * mu * mu / d2) / math.sqrt(d2)
    mu2, var2 = mu / d2, var / d2
    wrong = c2 * (1 - 8 * owens_t(math.sqrt(2) * mu2 / math.sqrt(1 + 2 * var2), 1 / math.sqrt(1 + 2 * var2)))
    assert abs(wrong - _quad_mean(INTEGRANDS[4], mu, var)) > 1e-4


@given(mu=st.floats(-6, 6), var=log_uniform(0.1, 5.0), cut=st.floats(-3, 3), side=st.sampled_from(["lo", "hi"]))
def test_quadratures_equal_adaptive_quadrature(mu, var, cut, side):
    f = INTEGRANDS[4]
    if var <= 3.0:  # the stated range of the 256-point Gauss-Hermite rule
        gh = float(gauss_hermite_mean(f, mu, var))
        assert abs(gh - _quad_mean(f, mu, var)) < QUADRATURE_VS_QUAD
    lower, upper = (cut, np.inf) if side == "lo" else (-np.inf, cut)
    tg = float(truncated_gauss_mean(f, mu, var, lower, upper))
    q = _quad_mean(f, mu, var, lower, upper)
    assert abs(tg - q) < QUADRATURE_VS_QUAD, report("truncated Gauss-Legendre", tg, q)


def test_moments_broadcast_over_arrays():
    mu = np.linspace(-2, 2, 5)[:, None]
    var = np.array([0.5, 1.0, 2.0])[None, :]
    out = erf_exp_moments(mu, var)
    assert all(o.shape == (5, 3) for o in out)
    assert out[4][2, 1] == pytest.approx(erf_exp_moments(0.0, 1.0)[4], abs=1e-15)
