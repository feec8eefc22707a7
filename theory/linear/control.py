"""Optimal control of the training budget: derivatives of the ODEs, the costate, Pontryagin's Hamiltonian.

The control is the training budget u(alpha) = eps(alpha) in [0, eps_max] (alpha = steps/N); the state is
x = (R, b) with dx/dalpha = f(x, u) of :mod:`theory.ode` (fixed budget law, any loss, not non-robust-only).
An objective of Bolza form

    J[u] = Phi(x(alpha_F)) + integral_0^alpha_F ell(x(alpha)) dalpha,
    Phi = S(R, b, eps_test) + lam E(R, b),    ell = (w_run / alpha_F) (S + lam E)

has the Hamiltonian H(x, p, u) = p . f(x, u) + ell(x); Pontryagin's minimum principle says that on an
optimal control the costate p obeys dp/dalpha = -(df/dx)^T p - grad ell, p(alpha_F) = grad Phi, and u(alpha)
minimises H(x(alpha), p(alpha), .) over [0, eps_max]; in particular the switching function
sigma(alpha) = dH/du = p . df/du is >= 0 where u = 0, <= 0 where u = eps_max and 0 on interior arcs.

Derivatives.  Every average in f is a Gaussian mean <g(x)> over x ~ N(mu_tau, v_tau) with
mu_tau = tau (rho R/2 - eps) - b, so d<g>/dmu = <g'> (differentiation under the integral), with
dmu/dR = tau rho/2, dmu/db = -1, dmu/deps = -tau.  The loss derivative delta = dL/dx and its derivative
delta' are closed forms (below); the means are taken by Gauss-Hermite quadrature (error < 1e-10 for
v <= 3, :func:`theory.gaussian.gauss_hermite_mean`).  This gives df/dx and df/du to quadrature accuracy
(no finite differences); tests check them against central differences of :func:`theory.ode.drift`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf, erfcx, ndtr

from ..core.gaussian import hermite_rule
from .params import ParameterError, Params

__all__ = ["loss_second_derivative", "drift_derivatives", "objective_terms", "costate_rhs", "switching_function",
           "hamiltonian"]

_SQRT_PI = math.sqrt(math.pi)


def loss_second_derivative(x, tau, loss: str = "quadratic", erf_scale: float = 1.0):
    """(delta, delta') = (dL/dx, d^2L/dx^2) for sigma = erf(x/s) and label tau.

    quadratic:      delta = (erf y - tau) k e^{-y^2},  y = x/s, k = 2/(s sqrt pi);
                    delta' = (k/s) e^{-y^2} ((2/sqrt pi) e^{-y^2} - 2 y (erf y - tau)).
    cross-entropy:  delta = -tau k / erfcx(u), u = -tau y;  delta' = -(k/s) erfcx'(u) / erfcx(u)^2 with
                    erfcx'(u) = 2 u erfcx(u) - 2/sqrt pi.
    """
    s = erf_scale
    y = np.asarray(x, dtype=float) / s
    k = 2.0 / (s * _SQRT_PI)
    if loss == "quadratic":
        g = np.exp(-y * y)
        d = (erf(y) - tau) * k * g
        dd = (k / s) * g * ((2.0 / _SQRT_PI) * g - 2.0 * y * (erf(y) - tau))
        return d, dd
    if loss == "cross_entropy":
        u = -tau * y
        inv = 1.0 / erfcx(u)  # erfcx > 0 grows like -2u e^{u^2}... for u -> -inf; its inverse stays finite
        d = -tau * k * inv
        dd = -(k / s) * (2.0 * u * inv - (2.0 / _SQRT_PI) * inv * inv)
        return d, dd
    raise ParameterError(f"loss must be one of quadratic, cross_entropy, got {loss!r}")


def _moments(mu, v, tau, loss, s, n):
    """<delta>, <delta^2>, <delta'>, <2 delta delta'> over N(mu, v), Gauss-Hermite with n nodes."""
    t, w = hermite_rule(n)
    x = np.asarray(mu, float)[..., None] + math.sqrt(2.0 * v) * t
    d, dd = loss_second_derivative(x, tau, loss, s)
    return (np.sum(w * d, -1), np.sum(w * d * d, -1), np.sum(w * dd, -1), np.sum(w * 2.0 * d * dd, -1))


def drift_derivatives(R, b, u, params: Params, n: int = 128):
    """f = (dR, db)/dalpha at budget u, its Jacobian df/dx (x = (R, b)) and df/du.

    Returns (f (..., 2), J (..., 2, 2), f_u (..., 2)); R, b, u broadcast.  Needs eps_law 'fixed' and
    non_robust_only False (the budget is the control itself).
    """
    p = params
    if p.eps_law != "fixed" or p.non_robust_only:
        raise ParameterError("optimal control of eps needs eps_law='fixed' and non_robust_only=False")
    R, b, u = np.broadcast_arrays(*(np.asarray(a, float) for a in (R, b, u)))
    ew, eb, rho = p.eta_w, p.eta_b, p.rho
    S_tM1 = S_M1 = S_vM2 = 0.0
    dR_tM1 = dR_vM2 = dR_M1 = 0.0  # d/dR of the sums
    db_tM1 = db_vM2 = db_M1 = 0.0
    du_tM1 = du_vM2 = du_M1 = 0.0
    for tau, P, v in p.cluster_weights:
        mu = tau * (0.5 * rho * R - u) - b
        M1, M2, D1, D2 = _moments(mu, v, tau, p.loss, p.erf_scale, n)
        S_tM1 = S_tM1 + P * tau * M1
        S_M1 = S_M1 + P * M1
        S_vM2 = S_vM2 + P * v * M2
        for c, acc in ((tau * 0.5 * rho, "R"), (-1.0, "b"), (-tau, "u")):
            a1, a2, a3 = P * tau * D1 * c, P * v * D2 * c, P * D1 * c
            if acc == "R":
                dR_tM1, dR_vM2, dR_M1 = dR_tM1 + a1, dR_vM2 + a2, dR_M1 + a3
            elif acc == "b":
                db_tM1, db_vM2, db_M1 = db_tM1 + a1, db_vM2 + a2, db_M1 + a3
            else:
                du_tM1, du_vM2, du_M1 = du_tM1 + a1, du_vM2 + a2, du_M1 + a3
    one = 1.0 - R * R
    fR = -ew * 0.5 * rho * one * S_tM1 - 0.5 * ew**2 * R * S_vM2
    fb = eb * S_M1
    J = np.empty(R.shape + (2, 2))
    J[..., 0, 0] = ew * rho * R * S_tM1 - ew * 0.5 * rho * one * dR_tM1 - 0.5 * ew**2 * (S_vM2 + R * dR_vM2)
    J[..., 0, 1] = -ew * 0.5 * rho * one * db_tM1 - 0.5 * ew**2 * R * db_vM2
    J[..., 1, 0] = eb * dR_M1
    J[..., 1, 1] = eb * db_M1
    fu = np.empty(R.shape + (2,))
    fu[..., 0] = -ew * 0.5 * rho * one * du_tM1 - 0.5 * ew**2 * R * du_vM2
    fu[..., 1] = eb * du_M1
    return np.stack([fR, fb], -1), J, fu


def objective_terms(R, b, params: Params, eps_test: float, lam: float):
    """Phi = S(R, b, eps_test) + lam E(R, b) and its gradient (dPhi/dR, dPhi/db) in closed form.

    S = p Phi_N((b + e - rho R/2)/sqrt v1) + (1-p) Phi_N((-b + e - rho R/2)/sqrt v2) (theory.errors);
    dS/dR = -(rho/2) [p phi(z+)/sqrt v1 + (1-p) phi(z-)/sqrt v2], dS/db = p phi(z+)/sqrt v1 - (1-p) phi(z-)/sqrt v2.
    """
    p = params
    R, b = np.asarray(R, float), np.asarray(b, float)
    s1, s2 = math.sqrt(p.v1), math.sqrt(p.v2)
    val = 0.0
    gR = 0.0
    gb = 0.0
    for e, wgt in ((eps_test, 1.0), (0.0, lam)):
        if wgt == 0.0:
            continue
        zp = (b + e - 0.5 * p.rho * R) / s1
        zm = (-b + e - 0.5 * p.rho * R) / s2
        php = np.exp(-0.5 * zp * zp) / math.sqrt(2 * math.pi) / s1
        phm = np.exp(-0.5 * zm * zm) / math.sqrt(2 * math.pi) / s2
        val = val + wgt * (p.prior * ndtr(zp) + (1 - p.prior) * ndtr(zm))
        gR = gR + wgt * (-0.5 * p.rho) * (p.prior * php + (1 - p.prior) * phm)
        gb = gb + wgt * (p.prior * php - (1 - p.prior) * phm)
    return val, np.stack(np.broadcast_arrays(gR, gb), -1)


def costate_rhs(R, b, u, pR, pb, params: Params, *, eps_test: float, lam: float, run_weight: float = 0.0):
    """dp/dalpha = -(df/dx)^T p - grad ell with ell = run_weight (S + lam E) (the running cost rate)."""
    _, J, _ = drift_derivatives(R, b, u, params)
    pvec = np.stack(np.broadcast_arrays(np.asarray(pR, float), np.asarray(pb, float)), -1)
    out = -np.einsum("...ji,...j->...i", J, pvec)
    if run_weight:
        _, g = objective_terms(R, b, params, eps_test, lam)
        out = out - run_weight * g
    return out


def switching_function(R, b, u, pR, pb, params: Params):
    """sigma = dH/du = p . df/du."""
    _, _, fu = drift_derivatives(R, b, u, params)
    return pR * fu[..., 0] + pb * fu[..., 1]


def hamiltonian(R, b, u, pR, pb, params: Params, *, eps_test: float = 1.0, lam: float = 0.0,
                run_weight: float = 0.0):
    """H = p . f(x, u) + ell(x); broadcasting over u gives H on a grid of controls."""
    f, _, _ = drift_derivatives(R, b, u, params)
    H = pR * f[..., 0] + pb * f[..., 1]
    if run_weight:
        H = H + run_weight * objective_terms(R, b, params, eps_test, lam)[0]
    return H
