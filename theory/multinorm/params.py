"""Parameters of online l_inf / l_1 / l_2 / multi-perturbation adversarial training of a linear erf classifier
on the distribution of Tramer & Boneh (NeurIPS 2019, Sec. 2; the model of :mod:`theory.tradeoff_lp`).

Glossary:

=============  ==============================================================  ======================
symbol         meaning                                                         domain
=============  ==============================================================  ======================
d              number of weak features; N = d + 1 inputs                       d -> infinity
y              label, +1 or -1 with probability 1/2 each                       {+1, -1}
x_0            robust feature: y with probability p0, -y otherwise             {+1, -1}
x_i            weak features y a/sqrt(d) + z_i, z_i ~ N(0, 1), i = 1..d
a              total strength of the weak features (sum_i x_i/sqrt d           a > 0
               = y a + N(0, 1))
p0             probability that the robust feature is right                    0 <= p0 <= 1
w = (w_0, w_i) weights, |w| = 1 after every step; w0 the robust weight
u_i            sqrt(d) w_i, the rescaled weak weights; rho(u, alpha) their law
b              threshold; sigma = erf(h), h = w.x - b
e              l_inf budget in units of 1/sqrt(d): radius e/sqrt(d)            e >= 0
eps1           l_1 radius                                                      eps1 >= 0
eps2           l_2 radius                                                      eps2 >= 0
eta_w, eta_b   learning rates; steps eta_w/N on w and eta_b/N on b             > 0, >= 0
alpha          learning time, alpha = steps/N                                  alpha >= 0
=============  ==============================================================  ======================

Attacks (exact for a linear model, no box), on x~ = x + delta:
l_inf: delta = -y (e/sqrt d) sign(w), every coordinate, x_0 included: y h drops by (e/sqrt d)|w|_1;
l_1:   delta = -y eps1 sign(w_j) e_j, j = argmax_j |w_j| (x_0 included): y h drops by eps1 max_j |w_j|;
l_2:   delta = -y eps2 w: y h drops by eps2.

Training schemes (SCHEMES): std (clean), adv_inf, adv_1, adv_2 (one attack), avg (the update averaged over
the l_inf and the l_1 attack point), max (the attack point of larger loss, ties to l_inf), sat (l_inf or l_1
with probability 1/2 per example).  The step (Danskin), with D = dL/dh~ at the attack point:
w <- (w - (eta_w/N) D x~)/|.|, b <- b + (eta_b/N) D.

Every part of the family (theory, Monte Carlo, command, figures) takes a :class:`MultinormParams`; d is a
setting of the run, not a parameter of the model.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

from ..core.params import FrozenParams, choice_field, ranged_field
from ..params import LOSSES, ParameterError, check_range, stable_key  # noqa: F401

__all__ = ["MultinormParams", "SCHEMES", "LOSSES", "ParameterError", "check_d"]

#: training schemes: the attack(s) each update is taken at
SCHEMES = ("std", "adv_inf", "adv_1", "adv_2", "avg", "max", "sat")

#: the largest d a run accepts (a float64 N-vector per replica of the Monte Carlo; beyond, use d = inf)
D_MAX = 10**8


_real, _choice = ranged_field, choice_field  # fields with their range / choices and help (theory.core.params)


@dataclass(frozen=True, kw_only=True)
class MultinormParams(FrozenParams):
    """Data model, attacks and training (defaults: the parameter set of the trade-off experiments, a = 2,
    p0 = 0.9, l_inf budget e = 4, l_1 budget eps1 = 2, eta_w = 0.2, eta_b = 0.1, initial w0 = 0.2).

    Frozen and validated on construction (a :class:`ParameterError` naming the field and its interval);
    ``replace(**changes)`` gives a validated copy and ``key()`` a stable hash of every field.  Each field's
    metadata holds ``range`` (lo, hi, open ends, reason) or ``choices``, and ``help``, from which the
    command-line flags are generated (:func:`simulate.cli.add_param_arguments`).
    """

    scheme: str = _choice("adv_inf", SCHEMES,
                          "training scheme: std (clean), adv_inf, adv_1, adv_2 (one attack), avg (update averaged "
                          "over the l_inf and l_1 points), max (point of larger loss), sat (l_inf or l_1 at random)")
    a: float = _real(2.0, 0.0, 50.0, "(]", "beyond 50 every error underflows to 0",
                     "strength of the weak features, x_i = y a/sqrt(d) + z_i (a > 0)")
    p0: float = _real(0.9, 0.0, 1.0, "[]", "a probability",
                      "probability that the robust feature x_0 equals the label (0 <= p0 <= 1)")
    e: float = _real(4.0, 0.0, 100.0, "[]", "beyond 100 the attack erases every weak feature many times over",
                     "l_inf budget in units of 1/sqrt(d): the radius is e/sqrt(d) (e >= 0)")
    eps1: float = _real(2.0, 0.0, 100.0, "[]", "beyond 100 noise sd every example is flipped",
                        "l_1 radius; the attack moves the coordinate of the largest |w_j| (eps1 >= 0)")
    eps2: float = _real(1.0, 0.0, 100.0, "[]", "beyond 100 noise sd every example is flipped",
                        "l_2 radius, delta = -y eps2 w (eps2 >= 0; used by adv_2)")
    eta_w: float = _real(0.2, 0.0, 10.0, "(]", "steps eta_w/N; beyond 10 the eta_w^2 noise term dominates",
                         "learning rate of w; the step is eta_w/N (eta_w > 0)")
    eta_b: float = _real(0.1, 0.0, 10.0, "[]", "0 freezes b; beyond 10 the dynamics of b is stiff",
                         "learning rate of b; the step is eta_b/N (eta_b >= 0)")
    w0: float = _real(0.2, -1.0, 1.0, "()", "the initial weak weights carry Q = 1 - w0^2 > 0",
                      "initial robust weight w_0; the weak weights start i.i.d. Gaussian with Q = 1 - w0^2 (|w0| < 1)")
    loss: str = _choice("quadratic", LOSSES, "training loss: quadratic (sigma - y)^2/2 or cross_entropy "
                                             "-log((1 + y sigma)/2)")

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if "range" in f.metadata:
                lo, hi, ends, why = f.metadata["range"]
                object.__setattr__(self, f.name, check_range(f.name, value, lo, hi, ends, why))
            elif value not in f.metadata["choices"]:
                raise ParameterError(f"{f.name} must be one of {', '.join(f.metadata['choices'])}, got {value!r}")

    # -- conveniences (replace, as_dict, key, field_names: theory.core.params.FrozenParams) ----------
    key_family = "multinorm"

    @property
    def attacks(self) -> tuple[str, ...]:
        """The attacks the scheme trains on: () for std, ('inf',), ('l1',), ('l2',), or ('inf', 'l1')."""
        return {"std": (), "adv_inf": ("inf",), "adv_1": ("l1",), "adv_2": ("l2",)}.get(self.scheme, ("inf", "l1"))

    def line(self) -> str:
        """Every field on one line, as the commands print them."""
        return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.as_dict().items())


def check_d(d: Any, allow_inf: bool = True) -> float:
    """The number of weak features as an int in [1, D_MAX], or math.inf (the large-d limit) when allowed;
    ParameterError naming ``d`` otherwise."""
    if isinstance(d, str):
        text = d.strip().lower()
        if text in ("inf", "infinity"):
            d = math.inf
        else:
            try:
                d = int(text)
            except ValueError:
                raise ParameterError(f"d must be an integer in [1, {D_MAX}]" + (" or inf" if allow_inf else "")
                                     + f", got {d!r}") from None
    if isinstance(d, float) and math.isinf(d) and d > 0 and allow_inf:
        return math.inf
    try:
        ok = not isinstance(d, bool) and float(d).is_integer() and 1 <= d <= D_MAX
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ParameterError(f"d must be an integer in [1, {D_MAX}]" + (" or inf" if allow_inf else "")
                             + f", got {d!r}")
    return int(d)
