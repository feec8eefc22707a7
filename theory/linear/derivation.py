"""Symbolic derivation (sympy) of the large-N ODEs from the microscopic update rule.

The steps, each executed below on symbols rather than typed in by hand:

1. One SGD step on the perturbed example xi_adv = xi - tau*eps*w with |w| = 1 and c = eta_w*delta/N:
       w~ = (1 + c tau eps) w - c xi,       b' = b + (eta_b/N) delta,       delta = dL/dx,
   so that, with h = w.xi, h_B = B.xi and q = |xi|^2/N,
       w~.B   = (1 + c tau eps) R - c h_B,
       |w~|^2 = (1 + c tau eps)^2 - 2 (1 + c tau eps) c h + c^2 q N.
2. Renormalisation R' = w~.B/|w~|, expanded in 1/N to first order: the term c^2 q N = eta_w^2 delta^2 q/N
   is of the same order as the learning step and yields the eta_w^2 term of the ODE.
3. Average over the data: given tau, (h, h_B) is Gaussian with means tau*rho*R/2, tau*rho/2, variances
   v_tau and covariance R v_tau; q -> v_tau (law of large numbers).  The drift is linear in h_B, which is
   replaced by E[h_B | h, tau], computed here by Gaussian conditioning.
4. delta is dL/dx differentiated by sympy from the loss (quadratic or cross-entropy of erf(x/s)), at the
   local field x = h - tau*eps - b; training only on non-robust examples multiplies it by
   Heaviside(-tau x); a random budget is averaged over its law outside the h-integral.

:func:`symbolic_rhs` integrates the resulting integrands with adaptive quadrature (scipy.integrate.quad);
the tests compare it with the fast closed form of :mod:`theory.ode`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from .params import Params, eps_quadrature

__all__ = ["Derivation", "derive", "symbolic_rhs", "SYMBOLS"]

iN = sp.Symbol("iN", positive=True)  # 1/N
R, b, h, hB, q, x = sp.symbols("R b h h_B q x", real=True)
tau, eps, rho, v, s = sp.symbols("tau epsilon rho v s", real=True)
eta_w, eta_b = sp.symbols("eta_w eta_b", positive=True)
delta = sp.Symbol("delta", real=True)
SYMBOLS = dict(iN=iN, R=R, b=b, h=h, h_B=hB, q=q, x=x, tau=tau, eps=eps, rho=rho, v=v, s=s,
               eta_w=eta_w, eta_b=eta_b, delta=delta)


@dataclass(frozen=True)
class Derivation:
    """The intermediate and final expressions of the derivation (sympy objects)."""

    step_R: sp.Expr  # R' - R, exact for one step
    drift_R_micro: sp.Expr  # N (R' - R) at order 1/N, function of delta, h, h_B, q
    drift_b_micro: sp.Expr  # N (b' - b)
    cond_mean_hB: sp.Expr  # E[h_B | h, tau]
    drift_R_field: sp.Expr  # drift of R after h_B -> E[h_B | h], q -> v; function of delta, h
    delta_of_x: sp.Expr  # dL/dx for the chosen loss (times the indicator if non-robust only)
    integrand_R: sp.Expr  # drift_R_field with delta = delta_of_x(h - tau eps - b)
    integrand_b: sp.Expr


class erfcx(sp.Function):
    """Scaled complementary error function exp(z^2) erfc(z) (scipy.special.erfcx), for stable numerics."""

    def _eval_rewrite_as_erf(self, z, **kwargs):
        return sp.exp(z**2) * (1 - sp.erf(z))


def _stable_form(loss: str, dLdx: sp.Expr) -> sp.Expr:
    """An algebraically identical form of dL/dx that does not divide underflowing numbers.

    For the cross-entropy, exp(-y^2)/(1 + tau erf(y)) = 1/erfcx(-tau y) for tau = +-1; the identity is
    checked symbolically here, so the numerics integrate exactly the derived expression.
    """
    if loss != "cross_entropy":
        return dLdx
    stable = -tau * 2 / (s * sp.sqrt(sp.pi)) / erfcx(-tau * x / s)
    for t in (1, -1):
        if sp.simplify((dLdx - stable.rewrite(sp.erf)).subs(tau, t)) != 0:
            raise AssertionError("the stable form of the cross-entropy derivative does not match")
    return stable


def _loss(loss: str) -> sp.Expr:
    sigma = sp.erf(x / s)
    if loss == "quadratic":
        return (sigma - tau) ** 2 / 2
    if loss == "cross_entropy":
        return -sp.log((1 + tau * sigma) / 2)
    raise ValueError(f"loss must be quadratic or cross_entropy, got {loss!r}")


@lru_cache(maxsize=8)
def derive(loss: str = "quadratic", non_robust_only: bool = False) -> Derivation:
    """Carry out steps 1-4 of the module docstring for a loss and variant."""
    c = eta_w * delta * iN
    wB = (1 + c * tau * eps) * R - c * hB
    ww = (1 + c * tau * eps) ** 2 - 2 * (1 + c * tau * eps) * c * h + c**2 * q / iN
    step_R = wB / sp.sqrt(ww) - R
    drift_R_micro = sp.expand(sp.series(step_R, iN, 0, 2).removeO().coeff(iN, 1))
    drift_b_micro = eta_b * delta

    # Gaussian conditioning of h_B on h within cluster tau (tau^2 = 1 is used to simplify).
    mean = sp.Matrix([tau * rho * R / 2, tau * rho / 2])  # (h, h_B)
    cov = v * sp.Matrix([[1, R], [R, 1]])
    cond = mean[1] + cov[1, 0] / cov[0, 0] * (h - mean[0])
    cond_mean_hB = sp.simplify(sp.expand(cond))

    drift_R_field = sp.expand(drift_R_micro.subs({hB: cond_mean_hB, q: v}))
    drift_R_field = sp.simplify(drift_R_field.subs(tau**2, 1))

    dLdx = _stable_form(loss, sp.diff(_loss(loss), x))
    if non_robust_only:
        dLdx = dLdx * sp.Heaviside(-tau * x)
    field_x = h - tau * eps - b
    integrand_R = drift_R_field.subs(delta, dLdx.subs(x, field_x))
    integrand_b = drift_b_micro.subs(delta, dLdx.subs(x, field_x))
    return Derivation(step_R, drift_R_micro, drift_b_micro, cond_mean_hB, drift_R_field, dLdx,
                      integrand_R, integrand_b)


@lru_cache(maxsize=8)
def _lambdified(loss: str, non_robust_only: bool):
    d = derive(loss, non_robust_only)
    args = (h, R, b, tau, eps, rho, v, s, eta_w, eta_b)
    from scipy.special import erfcx as _erfcx

    modules = [{"Heaviside": lambda z, h0=0.5: np.heaviside(z, h0), "erfcx": _erfcx}, "scipy", "numpy"]
    return (sp.lambdify(args, d.integrand_R, modules=modules),
            sp.lambdify(args, d.integrand_b, modules=modules))


def symbolic_rhs(R_value: float, b_value: float, params: Params, eps_nodes: int = 32,
                 epsabs: float = 1e-13, epsrel: float = 1e-11) -> tuple[float, float]:
    """(dR/dalpha, db/dalpha) from the sympy-derived integrands, by adaptive quadrature over h.

    Independent of :mod:`theory.ode` except for the budget law's quadrature nodes.
    """
    from scipy.integrate import quad

    fR, fb = _lambdified(params.loss, params.non_robust_only)
    nodes, weights = eps_quadrature(params.eps_law, params.eps, eps_nodes)
    out_R = out_b = 0.0
    for t, P, var in params.cluster_weights:
        mean = t * params.rho * R_value / 2
        sd = float(np.sqrt(var))
        for e, we in zip(nodes, weights):
            args = (R_value, b_value, t, float(e), params.rho, var, params.erf_scale, params.eta_w,
                    params.eta_b)
            dens = lambda hh: np.exp(-0.5 * (hh - mean) ** 2 / var) / np.sqrt(2 * np.pi * var)  # noqa: E731
            lo, hi = mean - 14 * sd, mean + 14 * sd
            kink = b_value + t * float(e)  # x = 0: the indicator of the non-robust variant jumps here
            pts = [kink] if lo < kink < hi else None
            iR = quad(lambda hh: float(fR(hh, *args)) * dens(hh), lo, hi, points=pts, epsabs=epsabs,
                      epsrel=epsrel, limit=200)[0]
            ib = quad(lambda hh: float(fb(hh, *args)) * dens(hh), lo, hi, points=pts, epsabs=epsabs,
                      epsrel=epsrel, limit=200)[0]
            out_R += we * P * iR
            out_b += we * P * ib
    return out_R, out_b
