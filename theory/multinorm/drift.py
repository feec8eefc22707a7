"""Drift and diffusion of the large-d dynamics (derivation: docs/multinorm.md).

State: the robust weight w0, the threshold b and the law rho(u) of the rescaled weak weights u_i = sqrt(d) w_i.
For a scheme that steps along G = sum_k c_k D_k x~_k (attack k in {clean, inf, l1, l2}, weights c_k), with
the field averages over (y, s, zeta), zeta = sum_i w_i z_i ~ N(0, Q),

    M_k = E[D_k],  Y_k = E[y D_k],  S_k = E[y s D_k],  Z_k = E[zeta D_k] (= Q E[D_k'], Stein),
    H_k = E[D_k (h~_k + b)] = w0 S_k + a ubar Y_k + Z_k - Delta_k Y_k,     V = E[(step's D)^2],

one weak weight moves by the drift and diffusion

    A(u) = f + g u - kappa sign(u),        B = eta_w^2 V,
    f = -eta_w a sum_k c_k Y_k,
    g = -eta_w sum_k c_k Z_k/Q + eta_w sum_k c_k H_k - eta_w^2 V/2 + eta_w c_2 eps2 Y_2,
    kappa = -eta_w c_inf e Y_inf,

so that rho obeys d rho/d alpha = -d/du (A rho) + (B/2) d^2 rho/du^2 (at finite d on |u| <= c, the l_1 ceiling:
see :mod:`theory.multinorm.solve`), and

    dw0/dalpha = -eta_w sum_k c_k S_k + eta_w w0 sum_k c_k H_k - eta_w^2 w0 V/2
                 + eta_w c_inf (e/sqrt d) sign(w0) Y_inf + eta_w c_1 eps1 Y_1 sigma + eta_w c_2 eps2 w0 Y_2,
    db/dalpha  = eta_b sum_k c_k M_k,

sigma = sign(w0) times x_0's share of the l_1 attack's steps (1 at d = inf, w0 != 0; at finite d set by the
ceiling, :meth:`theory.multinorm.solve._System.share`); m1 = eta_w c_1 eps1 Y_1 = -K, K the l_1 budget.
The shifts: Delta_inf = e (|w0|/sqrt d + L1), Delta_1 = eps1 E[max_j |w_j|], Delta_2 = eps2, Delta_clean = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np
from scipy.special import roots_hermite

from ..ode import loss_derivative
from .params import MultinormParams

__all__ = ["Coefficients", "scheme_modes", "coefficients", "GH_NODES"]

#: Gauss-Hermite nodes of the field average; the integrands are analytic in zeta with var Q <= 1: 128 nodes
#: reproduce the closed forms of theory.gaussian to < 1e-12 (64: 3e-8 on E[D^2]; tests/test_multinorm_theory.py)
GH_NODES = 128


#: the four clusters (y, s) of the data: label y and robust-feature sign s
_CLUSTER_Y = np.array([1.0, 1.0, -1.0, -1.0])
_CLUSTER_S = np.array([1.0, -1.0, 1.0, -1.0])


@lru_cache(maxsize=4)
def _hermite(n: int):
    t, w = roots_hermite(n)
    return math.sqrt(2.0) * t, w / math.sqrt(math.pi)


@dataclass(frozen=True)
class Coefficients:
    """Coefficients of one mode's vector field (scalars): the (w0, b) drift and the weak weights' A(u), B.

    dw0 = n0 + m1 * sigma, where sigma (x_0's signed share of the l_1 attack's steps) is left to the solver:
    at d = inf it is discontinuous at w0 = 0 (Filippov), at finite d it is set by the l_1 ceiling.
    """

    n0: float
    m1: float
    db: float
    f: float
    g: float
    kappa: float
    B: float
    shift_inf: float
    shift_1: float

    def combine(self, other: "Coefficients", theta: float) -> "Coefficients":
        """theta * self + (1 - theta) * other (the Filippov combination of two modes' fields)."""
        return Coefficients(**{f.name: theta * getattr(self, f.name) + (1.0 - theta) * getattr(other, f.name)
                               for f in fields(self)})


def scheme_modes(scheme: str):
    """The modes of a scheme: a list of (weights {attack: c_k}, how V is formed).

    'joint': V = E[(sum_k c_k D_k)^2] (one step averages the attack points: avg); 'mixture': V = sum_k c_k
    E[D_k^2] (one attack per step, chosen at random: sat).  'max' has two modes (l_inf, l_1) between which the
    solver switches on the sign of Delta_inf - Delta_1.
    """
    return {"std": [({"clean": 1.0}, "joint")], "adv_inf": [({"inf": 1.0}, "joint")],
            "adv_1": [({"l1": 1.0}, "joint")], "adv_2": [({"l2": 1.0}, "joint")],
            "avg": [({"inf": 0.5, "l1": 0.5}, "joint")], "sat": [({"inf": 0.5, "l1": 0.5}, "mixture")],
            "max": [({"inf": 1.0}, "joint"), ({"l1": 1.0}, "joint")]}[scheme]


def shifts_of(w0: float, L1: float, emax_w: float, p: MultinormParams, d: float) -> dict[str, float]:
    """Delta_k: how much attack k lowers y h; emax_w = E[max_j |w_j|] (x_0 included), |w0| at d = inf."""
    fin = 0.0 if math.isinf(d) else abs(w0) / math.sqrt(d)
    return {"clean": 0.0, "inf": p.e * (fin + L1), "l1": p.eps1 * emax_w, "l2": p.eps2}


def coefficients(weights: dict, vform: str, w0: float, b: float, ubar: float, L1: float, emax_w: float,
                 p: MultinormParams, d: float) -> Coefficients:
    """The mode's :class:`Coefficients` at the state (w0, b, ubar, L1, E max_j |w_j|); Q = 1 - w0^2."""
    Q = max(1.0 - w0 * w0, 1e-300)
    t, wt = _hermite(GH_NODES)
    zeta = math.sqrt(Q) * t  # nodes of N(0, Q)
    sh = shifts_of(w0, L1, emax_w, p, d)
    eta = p.eta_w
    # the four clusters (y, s) as rows, the Gauss-Hermite nodes of zeta as columns
    yv, sv = _CLUSTER_Y, _CLUSTER_S
    P = 0.5 * np.where(sv > 0, p.p0, 1.0 - p.p0)
    yP, ysP = yv * P, yv * sv * P
    base = yv * (w0 * sv + p.a * ubar)
    sums = dict(M=0.0, Y=0.0, S=0.0, Z=0.0, H=0.0)
    per = {}
    V = 0.0
    Dbar = 0.0  # sum_k c_k D_k at the nodes (joint V)
    for k, c in weights.items():
        D = loss_derivative((base - yv * sh[k])[:, None] + zeta[None, :] - b, yv[:, None], p.loss)
        mD = D @ wt
        Mk, Yk, Sk = float(P @ mD), float(yP @ mD), float(ysP @ mD)
        Zk = float(P @ (D @ (wt * zeta)))
        Hk = w0 * Sk + p.a * ubar * Yk + Zk - sh[k] * Yk
        per[k] = (Yk,)
        for name, val in zip("MYSZH", (Mk, Yk, Sk, Zk, Hk)):
            sums[name] += c * val
        if vform == "mixture":
            V += c * float(P @ ((D * D) @ wt))
        else:
            Dbar = Dbar + c * D
    if vform != "mixture":
        V = float(P @ ((Dbar * Dbar) @ wt))
    c_inf, c_1, c_2 = (weights.get(k, 0.0) for k in ("inf", "l1", "l2"))
    Y_inf = per["inf"][0] if "inf" in per else 0.0
    Y_1 = per["l1"][0] if "l1" in per else 0.0
    Y_2 = per["l2"][0] if "l2" in per else 0.0
    sgn0 = math.copysign(1.0, w0) if w0 != 0.0 else 0.0
    inv_sd = 0.0 if math.isinf(d) else 1.0 / math.sqrt(d)
    n0 = (-eta * sums["S"] + eta * w0 * sums["H"] - 0.5 * eta * eta * w0 * V
          + eta * c_inf * p.e * inv_sd * sgn0 * Y_inf + eta * c_2 * p.eps2 * w0 * Y_2)
    m1 = eta * c_1 * p.eps1 * Y_1
    f = -eta * p.a * sums["Y"]
    g = -eta * sums["Z"] / Q + eta * sums["H"] - 0.5 * eta * eta * V + eta * c_2 * p.eps2 * Y_2
    kappa = -eta * c_inf * p.e * Y_inf
    return Coefficients(n0=n0, m1=m1, db=p.eta_b * sums["M"], f=f, g=g, kappa=kappa, B=eta * eta * V,
                        shift_inf=sh["inf"], shift_1=sh["l1"])
