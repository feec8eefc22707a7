"""The large-d theory of the multinorm family (theory/multinorm; docs/multinorm.md): the coefficients against
independent closed forms, the renormalisation identity, the exact Gaussian reduction, the two solvers of the
Fokker-Planck equation against each other and against closed forms, and the static bounds."""

import math

import numpy as np
import pytest

from tests import tolerances as tol
from theory.multinorm import MultinormParams, solve
from theory.multinorm.drift import coefficients, scheme_modes
from theory.ode import field_moments

STATES = [(0.2, 0.0, 0.1, 0.7), (0.6, 0.3, -0.2, 0.5), (-0.4, -0.5, 0.4, 0.9), (0.95, 0.1, 0.01, 0.05)]


@pytest.mark.parametrize("w0,b,ubar,L1", STATES)
def test_field_averages_against_closed_form(w0, b, ubar, L1):
    """M = E[D] and V = E[D^2] of the clean and the l_2 attack point against theory.ode.field_moments (the
    closed forms of theory.gaussian, Owen's T): the Gauss-Hermite rule of drift.py is exact to rounding."""
    p = MultinormParams(scheme="std", eta_b=1.0, eta_w=1.0)
    Q = 1 - w0 * w0
    for att, shift in (("clean", 0.0), ("l2", p.eps2)):
        co = coefficients({att: 1.0}, "joint", w0, b, ubar, L1, abs(w0), p, math.inf)
        M = V = 0.0
        for y in (1.0, -1.0):
            for s, ps in ((1.0, p.p0), (-1.0, 1 - p.p0)):
                m1, m2 = field_moments(y * (w0 * s + p.a * ubar - shift) - b, Q, y)
                M += 0.5 * ps * m1
                V += 0.5 * ps * m2
        assert abs(co.db - M) < tol.MULTINORM_QUADRATURE
        assert abs(co.B - V) < tol.MULTINORM_QUADRATURE


@pytest.mark.parametrize("scheme", ["std", "adv_inf", "adv_1", "adv_2", "avg", "sat", "max"])
@pytest.mark.parametrize("d", [math.inf, 1000])
def test_renormalisation_identity(scheme, d):
    """d(Q + w0^2)/dalpha = 2 E[u A(u)] + B + 2 w0 dw0/dalpha = 0 for any law with the given moments (here at
    d = inf, or finite d with the l_1 attack on x_0: pi0 = 1, pi = 0); the coefficients of every mode."""
    p = MultinormParams(scheme=scheme)
    for w0, b, ubar, L1 in STATES:
        Q = 1 - w0 * w0
        for weights, vform in scheme_modes(scheme):
            emax = abs(w0)
            co = coefficients(weights, vform, w0, b, ubar, L1, emax, p, d)
            dw0 = co.n0 + co.m1 * math.copysign(1.0, w0)
            dQ = 2 * (co.f * ubar + co.g * Q - co.kappa * L1) + co.B
            assert abs(dQ + 2 * w0 * dw0) < 1e-13


@pytest.mark.parametrize("scheme", ["std", "adv_2"])
def test_particles_keep_gaussian_laws_gaussian(scheme):
    """std and adv_2: the drift is linear in u and rho stays Gaussian.  The particle solver (positions of the
    quantiles, differences exact on a linear X(s)) against the moment ODE (w0, b, mean, variance): the same
    trajectory up to the integrators' tolerances (1e-8); the finite volumes to their discretisation error."""
    p = MultinormParams(scheme=scheme, eta_w=0.5, w0=0.3)
    al = np.array([0.0, 1.0, 3.0])
    ref = solve(p, al, math.inf, "moments", snapshots=False, rtol=1e-11, atol=1e-13)
    par = solve(p, al, math.inf, "particles", snapshots=False, rtol=1e-11, atol=1e-13, n=100)
    for k in ("w0", "b", "ubar", "L1", "E", "S_inf", "S_1", "union"):
        assert np.max(np.abs(par[k] - ref[k])) < tol.MULTINORM_REDUCTION, k
    assert np.max(np.abs(par["Q_law"] + par["w0"] ** 2 - 1)) < tol.MULTINORM_REDUCTION
