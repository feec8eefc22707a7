"""Symbolic derivation (sympy) of the committee machine's large-N ODEs from the microscopic rule.

Steps, executed on symbols:

1. One SGD step on xi~ = xi + delta with c = eta_w/N:  w~_k = w_k - c e_k xi~, so with u_k = w_k.xi~,
   y_d = B_d.xi~ and q = |xi~|^2/N:
       w~_k.B_d = R_kd - c e_k y_d,     w~_k.w~_l = Q_kl - c (e_k u_l + e_l u_k) + c^2 e_k e_l q N.
2. Renormalisation R'_kd = w~_k.B_d/|w~_k|, Q'_kl = w~_k.w~_l/(|w~_k||w~_l|), expanded to first order in 1/N
   (:func:`derive`): the c^2 q N terms are O(1/N) and give the eta_w^2 terms; q -> v_c (the attack adds
   |delta|^2/N = O(1/N) to q).
3. e_k = dL/dlambda_k differentiated by sympy from L = (sum_k v_k erf(lambda_k) - tau)^2/2, and the attack map
   delta = sum_k c_k w_k from the input gradient dL/dxi = sum_k e_k w_k (:func:`attack_expressions`).
4. Averages: given the cluster, lambda = R m_c - b + sqrt(v_c) L zeta with L L^T = Q (here a Cholesky factor,
   written out symbolically for K = 2) and E[B_d.xi | zeta] = m_cd + sqrt(v_c) (R^T L^{-T} zeta)_d; the drift
   is linear in B_d.xi, so it may be replaced by this conditional mean.

:func:`symbolic_drift` integrates the lambdified integrand of step 4 on a Gauss-Hermite grid of its own
(Cholesky map, 64 nodes per dimension) for K = 2 and D = 1 or 2; the tests compare it with the hand-vectorised
:func:`theory.committee.drift`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import sympy as sp

from .ode import CommitteeParams, State

__all__ = ["derive", "attack_expressions", "symbolic_drift"]

iN = sp.Symbol("iN", positive=True)
eta_w, eta_b, eta_v = sp.symbols("eta_w eta_b eta_v", positive=True)


@lru_cache(maxsize=4)
def derive(K: int = 2, D: int = 1):
    """N (R' - R) and N (Q' - Q) to order 1/N as sympy expressions of e_k, u_k, y_d, q, R, Q."""
    e = sp.symbols(f"e1:{K + 1}", real=True)
    u = sp.symbols(f"u1:{K + 1}", real=True)
    y = sp.symbols(f"y1:{D + 1}", real=True)
    q = sp.Symbol("q", positive=True)
    R = sp.Matrix(K, D, lambda k, d: sp.Symbol(f"R{k + 1}{d + 1}", real=True))
    Q = sp.Matrix(K, K, lambda k, l: 1 if k == l else sp.Symbol(f"Q{min(k, l) + 1}{max(k, l) + 1}", real=True))
    c = eta_w * iN
    wB = sp.Matrix(K, D, lambda k, d: R[k, d] - c * e[k] * y[d])
    ww = sp.Matrix(K, K, lambda k, l: Q[k, l] - c * (e[k] * u[l] + e[l] * u[k]) + c**2 * e[k] * e[l] * q / iN)
    norm = [sp.sqrt(ww[k, k]) for k in range(K)]
    dR = sp.Matrix(K, D, lambda k, d: sp.series(wB[k, d] / norm[k] - R[k, d], iN, 0, 2).removeO().coeff(iN, 1))
    dQ = sp.Matrix(K, K, lambda k, l: 0 if k == l else
                   sp.series(ww[k, l] / (norm[k] * norm[l]) - Q[k, l], iN, 0, 2).removeO().coeff(iN, 1))
    return {"e": e, "u": u, "y": y, "q": q, "R": R, "Q": Q, "dR": dR.applyfunc(sp.expand),
            "dQ": dQ.applyfunc(sp.expand)}


def _loss_and_errors(lam, v, tau):
    K = len(lam)
    x = sp.symbols(f"x1:{K + 1}", real=True)  # the fields as free symbols, for the derivative
    sigma = sum(v[k] * sp.erf(x[k]) for k in range(K))
    L = (sigma - tau) ** 2 / 2
    at = dict(zip(x, lam))
    return sigma.subs(at), [sp.diff(L, x[k]).subs(at) for k in range(K)]


def attack_expressions(lam, Q, v, tau, eps, steps, step):
    """The perturbed fields after ``steps`` PGD steps, as sympy expressions: c += step eps g/|g|_Q with
    g_k = dL/dlambda_k (the coefficients of dL/dxi on w_k), then c scaled by Min(1, eps/|c|_Q)."""
    K = len(lam)
    c = sp.zeros(K, 1)
    lt = sp.Matrix(lam)
    for _ in range(steps):
        _, g = _loss_and_errors(list(lt), v, tau)
        g = sp.Matrix(g)
        gn = sp.sqrt((g.T * Q * g)[0, 0])
        c = c + step * eps * g / gn
        cn = sp.sqrt((c.T * Q * c)[0, 0])
        c = c * sp.Min(1, eps / cn)
        lt = sp.Matrix(lam) + Q * c
    return c, lt


@lru_cache(maxsize=16)
def _integrand(D: int, steps: int, step: float, attack: bool):
    K = 2
    d = derive(K, D)
    z = sp.symbols("z1 z2", real=True)
    Q12, sd, tau, eps = sp.symbols("Q12 sd tau eps", real=True)
    b = sp.symbols("b1 b2", real=True)
    v = sp.symbols("v1 v2", real=True)
    m = sp.symbols(f"m1:{D + 1}", real=True)
    R = d["R"]
    Q = sp.Matrix([[1, Q12], [Q12, 1]])
    Lc = sp.Matrix([[1, 0], [Q12, sp.sqrt(1 - Q12**2)]])  # Cholesky factor of Q
    h = R * sp.Matrix(m) + sd * Lc * sp.Matrix(z)
    lam = [h[k] - b[k] for k in range(K)]
    hbar = sp.Matrix(m) + sd * R.T * Lc.T.inv() * sp.Matrix(z)  # E[B.xi | zeta] (Gaussian conditioning)
    if attack:
        c, lt = attack_expressions(lam, Q, v, tau, eps, steps, step)
    else:
        c, lt = sp.zeros(K, 1), sp.Matrix(lam)
    sigma, e = _loss_and_errors(list(lt), v, tau)
    subs = {d["e"][k]: e[k] for k in range(K)}
    subs.update({d["u"][k]: lt[k] + b[k] for k in range(K)})
    subs.update({d["y"][j]: hbar[j] + (R.T * c)[j] for j in range(D)})
    subs[d["q"]] = sd**2
    subs[d["Q"][0, 1]] = Q12
    exprs = [d["Q"][0, 1] * 0 + d["dQ"][0, 1]] + [d["dR"][k, j] for k in range(K) for j in range(D)]
    exprs = [ex.subs(subs) for ex in exprs]
    exprs += [eta_b * e[k] for k in range(K)] + [-eta_v * (sigma - tau) * sp.erf(lt[k]) for k in range(K)]
    args = [z[0], z[1], Q12, *[R[k, j] for k in range(K) for j in range(D)], *b, *v, *m, sd, tau, eps, eta_w, eta_b,
            eta_v]
    return sp.lambdify(args, exprs, modules=[{"Min": np.minimum}, "scipy", "numpy"], cse=True)


def symbolic_drift(state: State, p: CommitteeParams, n: int = 64, attack: bool = True) -> np.ndarray:
    """The packed drift (Q12, R, b, v) for K = 2 from the sympy integrand, on an n x n Gauss-Hermite grid."""
    if p.K != 2:
        raise ValueError("the symbolic route is written out for K = 2")
    with np.errstate(invalid="ignore", divide="ignore"):
        return _symbolic_drift(state, p, n, attack)


def _symbolic_drift(state, p, n, attack):
    f = _integrand(p.D, p.pgd_steps, float(p.pgd_step), attack and p.eps > 0)
    t, w = np.polynomial.hermite_e.hermegauss(n)  # probabilists' Hermite: weight exp(-z^2/2)
    w = w / w.sum()
    Z1, Z2 = np.meshgrid(t, t, indexing="ij")
    WW = np.outer(w, w)
    mix = p.mixture()
    Q, R, b, v = state
    total = 0.0
    for c in range(len(mix.priors)):
        vals = f(Z1, Z2, Q[0, 1], *R.ravel(), *b, *v, *mix.means[c], np.sqrt(mix.variances[c]), mix.labels[c], p.eps,
                 p.eta_w, p.eta_b, p.eta_v)
        # far-out nodes where every erf'(lambda) underflows leave the attack direction 0/0; e = 0 there
        total = total + mix.priors[c] * np.array([np.sum(WW * np.nan_to_num(np.broadcast_to(x, Z1.shape)))
                                                  for x in vals])
    return np.asarray(total)
