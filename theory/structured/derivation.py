"""Symbolic derivation (sympy) of the per-component dynamics of :mod:`theory.structured`.

Carried out on symbols, in the eigenbasis of a shared covariance (component i, eigenvalues lambda_tau,i):

1. One step on xi_adv = xi - tau eps w, |w| = 1, c = eta_w delta/N:
       w~_i = (1 + c tau eps) w_i - c xi_i,    |w~|^2 = (1 + c tau eps)^2 - 2 (1 + c tau eps) c h + c^2 q N,
   with h = w.xi and q = |xi|^2/N; the new component is w~_i/|w~|.
2. Expansion in 1/N: N (w'_i - w_i) at order 1 (the drift of the mean) and N (w'_i^2 - w_i^2) at order 1/N
   (the second moment: the O(1/N) piece c^2 xi_i^2 N is the noise), with q -> vbar_tau.
3. Average over xi given tau: E[xi_i | h] = mu_i + lambda_i w_i (h - M)/Q (Gaussian conditioning), and at
   leading order E[delta^2 xi_i^2] = <delta^2> lambda_i.  The averages of delta, delta h, delta^2 over h are
   left as symbols D1, Dh, D2 (Dh = <delta h>), so the result is an exact polynomial identity that
   :func:`component_rhs` evaluates with averages computed by adaptive quadrature.
4. The mean m_i = E[w_i] and the variance c_i = E[w_i^2] - m_i^2: the drift is linear in w_i, so
   E[w_i drift_i] = drift_i evaluated at K_ii = m_i^2 + c_i.

The tests compare :func:`component_rhs` with :func:`theory.structured.rhs`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import sympy as sp

from ..linear.params import Params, eps_quadrature

__all__ = ["derive_components", "component_rhs"]

iN = sp.Symbol("iN", positive=True)
w_i, xi_i, h, q, tau, eps, delta = sp.symbols("w_i xi_i h q tau epsilon delta", real=True)
eta_w = sp.Symbol("eta_w", positive=True)
mu_i, lam_i, M, Q, vbar = sp.symbols("mu_i lambda_i M Q vbar", real=True)
D1, Dh, D2 = sp.symbols("D1 Dh D2", real=True)
m_i, c_i = sp.symbols("m_i c_i", real=True)


@lru_cache(maxsize=1)
def derive_components():
    """(drift of m_i, drift of c_i) per cluster, as sympy expressions in m_i, c_i, mu_i, lambda_i, M, Q, vbar,
    eta_w, iN and the field averages D1 = <delta>, Dh = <delta h>, D2 = <delta^2> of that cluster."""
    c = eta_w * delta * iN
    wt = (1 + c * tau * eps) * w_i - c * xi_i
    norm2 = (1 + c * tau * eps) ** 2 - 2 * (1 + c * tau * eps) * c * h + c**2 * q / iN
    new = wt / sp.sqrt(norm2)
    step1 = sp.expand(sp.series(new - w_i, iN, 0, 2).removeO().coeff(iN, 1))  # N (w'_i - w_i) at O(1)
    sq = sp.expand(sp.series(new**2 - w_i**2, iN, 0, 3).removeO())
    step2_noise = sp.expand(sq.coeff(iN, 2))  # N (w'^2 - w^2) at O(1/N): the terms of order iN^2 before the N
    step2_drift = sp.expand(sq.coeff(iN, 1))

    def average(expr, noise_term=False):
        expr = sp.expand(expr.subs(q, vbar))
        poly = sp.Poly(expr, xi_i, delta, h)
        out = 0
        for (kx, kd, kh), coef in poly.terms():
            if kx == 0:
                mono = {(0, 0): 1, (1, 0): D1, (1, 1): Dh, (2, 0): D2}.get((kd, kh))
            elif kx == 1 and kd == 1 and kh == 0:
                # E[delta xi_i] = D1 mu_i + lambda_i w_i <delta (h - M)>/Q, <delta (h - M)> = Dh - M D1
                mono = D1 * mu_i + lam_i * w_i * (Dh - M * D1) / Q
            elif kx == 2 and kd == 2 and kh == 0 and noise_term:
                mono = D2 * lam_i  # leading order of E[delta^2 xi_i^2]
            else:
                mono = None
            if mono is None:
                if noise_term:
                    continue  # higher powers of the field: subleading at this order (O(1/N^2) per step)
                raise AssertionError(f"unexpected monomial xi^{kx} delta^{kd} h^{kh} in the drift")
            out += coef * mono
        return sp.expand(out)

    drift_w = average(step1)  # E[N (w'_i - w_i) | w]: linear in w_i
    # second moment: E[N(w'^2 - w^2)] = 2 E[w_i drift] + N E[(c xi_i)^2] at O(1/N)
    quad_part = average(step2_noise, noise_term=True)
    # the iN^1 coefficient of w'^2 - w^2 is 2 w_i step1 (checked here)
    if sp.simplify(step2_drift - sp.expand(2 * w_i * step1)) != 0:
        raise AssertionError("the O(1/N) part of w'^2 - w^2 is not 2 w_i (w' - w)")
    noise = sp.expand(quad_part.subs(w_i, 0))  # noise: the part of order 1/N independent of w_i
    dm = sp.expand(drift_w.subs(w_i, m_i))
    dK = sp.expand(sp.expand(2 * w_i * drift_w).subs(w_i**2, m_i**2 + c_i).subs(w_i, m_i) + iN * noise)
    dc = sp.expand(dK - 2 * m_i * dm)
    return dm, dc


@lru_cache(maxsize=4)
def _lambdified():
    dm, dc = derive_components()
    args = (m_i, c_i, mu_i, lam_i, M, Q, vbar, eta_w, iN, D1, Dh, D2, tau, eps)
    return sp.lambdify(args, dm, "numpy"), sp.lambdify(args, dc, "numpy")


def _field_averages(Mv, Qv, b, tau_v, params: Params, eps_nodes=32):
    """<delta>, <delta h>, <delta^2> over h ~ N(M, Q) by adaptive quadrature (independent of theory.gaussian)."""
    from scipy.integrate import quad

    from ..linear.ode import loss_derivative

    nodes, weights = eps_quadrature(params.eps_law, params.eps, eps_nodes)
    sd = float(np.sqrt(Qv))
    out = np.zeros(3)
    for e, we in zip(nodes, weights):
        def d(hh, e=e):
            x = hh - tau_v * e - b
            val = float(loss_derivative(x, tau_v, params.loss, params.erf_scale))
            if params.non_robust_only and tau_v * x >= 0:
                return 0.0
            return val

        dens = lambda hh: np.exp(-0.5 * (hh - Mv) ** 2 / Qv) / np.sqrt(2 * np.pi * Qv)  # noqa: E731
        lo, hi = Mv - 14 * sd, Mv + 14 * sd
        kink = b + tau_v * float(e)
        pts = [kink] if lo < kink < hi else None
        for j, fun in enumerate((lambda hh: d(hh), lambda hh: d(hh) * hh, lambda hh: d(hh) ** 2)):
            out[j] += we * quad(lambda hh: fun(hh) * dens(hh), lo, hi, points=pts, epsabs=1e-13, epsrel=1e-11,
                                limit=200)[0]
    return out


def component_rhs(m, c, b, mu, lam, params: Params):
    """(dm/dalpha, dc/dalpha, db/dalpha) in the eigenbasis from the sympy-derived expressions.

    ``mu`` (2, N) means in the eigenbasis, ``lam`` (2, N) eigenvalues; field averages by quad.
    """
    fm, fc = _lambdified()
    m, c = np.asarray(m, float), np.asarray(c, float)
    N = m.size
    dm = np.zeros(N)
    dc = np.zeros(N)
    db = 0.0
    for k, (tau_v, P) in enumerate(((1.0, params.prior), (-1.0, 1.0 - params.prior))):
        Mv = float(mu[k] @ m)
        Qv = float(lam[k] @ (m * m + c))
        vb = float(np.mean(lam[k]))
        a1, ah, a2 = _field_averages(Mv, Qv, b, tau_v, params)
        args = (m, c, mu[k], lam[k], Mv, Qv, vb, params.eta_w, 1.0 / N, a1, ah, a2, tau_v, params.eps)
        dm = dm + P * np.broadcast_to(fm(*args), (N,))
        dc = dc + P * np.broadcast_to(fc(*args), (N,))
        db += P * params.eta_b * a1
    return dm, dc, db
