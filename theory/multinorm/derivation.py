"""Symbolic check (sympy) of the one-step expansion behind :mod:`theory.multinorm.drift` (docs/multinorm.md).

One step w' = (w - c G)/|w - c G| with c = eta_w/N, |w| = 1, w.G = P (= sum_k c_k D_k (h~_k + b)) and
|G|^2 = N Dbar^2.  Writing c = eta/N and expanding in 1/N, the component j of the step is

    N (w'_j - w_j) = -eta G_j + eta w_j P - (eta^2/2) w_j Dbar^2 + O(1/N),

the formula that drift.py averages (with G_0 = sum_k c_k D_k x~_k,0 and sqrt(d) G_i for u_i).  The renormalisation
of the attacks: sum_j w_j delta_k,j = -y Delta_k for each attack's delta (l_inf: -y (e/sqrt d) sign(w_j);
l_1: -y eps1 sign(w_j*) on j* = argmax |w_j|; l_2: -y eps2 w_j), which makes d(Q + w0^2)/dalpha vanish.
"""

from __future__ import annotations

import sympy as sp

__all__ = ["step_expansion"]


def step_expansion():
    """(the O(1/N) coefficient of N (w'_j - w_j) from sympy, the formula of the module docstring); their
    difference simplifies to 0."""
    N, eta, wj, Gj, P, Dbar = sp.symbols("N eta w_j G_j P Dbar", real=True)
    eps = sp.symbols("epsilon", positive=True)  # eps = 1/N
    c = eta * eps
    norm2 = 1 - 2 * c * P + c**2 * Dbar**2 / eps  # |w - c G|^2 with |G|^2 = N Dbar^2 = Dbar^2/eps
    step = (wj - c * Gj) / sp.sqrt(norm2) - wj
    series = sp.series(step / eps, eps, 0, 1).removeO()  # N (w'_j - w_j) to O(1)
    formula = -eta * Gj + eta * wj * P - sp.Rational(1, 2) * eta**2 * wj * Dbar**2
    return sp.simplify(series), formula
