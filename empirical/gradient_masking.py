"""Self-checks that warn when robust accuracies look like gradient masking (Athalye et al. 2018;
Carlini et al. 2019, "On evaluating adversarial robustness"; Croce & Hein 2020).

Each check returns a warning string with its reason, or nothing:

1. ``large_budget``: at a budget so large that the set contains images of any class (l_inf eps = 1 covers
   the whole box), a working gradient attack must bring accuracy to about 0. If more than ``tol`` of the
   examples survive, the gradients do not point to adversarial examples: masking. The attack is PGD-40 for
   l_inf and l_2 and, for l_1, the evaluation's own l_1 attack (APGD-CE with the 3/2/1 eps schedule): SLIDE
   stalls at large l_1 budgets on models whose gradients are fine (a false alarm).
2. ``gradient_free``: random points of the set (``n_random`` uniform draws per example) should never beat
   a gradient attack. If random search breaks examples that PGD left robust, the gradient is uninformative.
3. ``single_vs_multi``: one FGSM-like step (PGD with ``steps=1``, step = eps) should never find more than
   multi-step PGD; if it does, the loss surface is locally flat or noisy around the data (masking).
4. ``stronger_attack``: the APGD pair (``attack_for(threat, "apgd")``: APGD-CE + APGD-T) finds noticeably
   more (> ``tol``) than PGD-40: PGD-40 underestimates the threat, report the suite.
5. ``square``: the gradient-free Square attack at full strength (``n_queries`` = 5000 queries, as in the
   evaluation suite) breaks examples that the APGD pair left robust: the gradients are uninformative there
   (masking); the APGD-only accuracy (``--strength apgd``) is an overestimate, report the full suite.

These are heuristics, not proofs: passing them does not certify robustness.
"""

from __future__ import annotations

import warnings as _warnings

import torch

__all__ = ["gradient_masking_warnings", "GradientMaskingWarning"]


class GradientMaskingWarning(UserWarning):
    """Robust accuracy numbers that look like gradient masking."""


@torch.no_grad()
def _robust(model, x, y, xa) -> torch.Tensor:
    return (model(x).argmax(1) == y) & (model(xa).argmax(1) == y)


def gradient_masking_warnings(model, x, y, threat, generator: torch.Generator | None = None,
                              tol: float = 0.02, n_random: int = 20, n_queries: int = 5000,
                              emit: bool = True) -> list[str]:
    """The warnings (strings) for ``threat`` (an l_p ball) on (x, y); each is also issued as a
    :class:`GradientMaskingWarning` when ``emit``. ``n_queries``: queries of the Square check (0: skip it)."""
    from .attacks import PGD, Square, attack_for, get_attack
    from .threats import L1Ball, L2Ball, LinfBall

    if not isinstance(threat, (LinfBall, L2Ball, L1Ball)):
        raise ValueError(f"the gradient-masking checks apply to l_p threats, got {threat!r}")
    out = []
    n = len(x)
    pgd = get_attack("pgd", threat, steps=40)
    r_pgd = _robust(model, x, y, pgd(model, x, y, generator))
    # 1. large budget: l_inf eps 1 (any image in the box), l2 / l1 the diameter of the box.
    d = x[0].numel()
    big = {"linf": 1.0, "l2": d ** 0.5, "l1": float(d)}[threat.name]
    if isinstance(threat, L1Ball):
        big_attack = attack_for(threat.replace(eps=big), "apgd").attacks[0]  # the evaluation's APGD-CE
    else:
        big_attack = get_attack("pgd", threat, eps=big, steps=40)
    r_big = _robust(model, x, y, big_attack(model, x, y, generator))
    if r_big.float().mean() > tol:
        out.append(f"large_budget: {threat.name} accuracy {float(r_big.float().mean()):.3f} at eps={big:g} "
                   f"(should be ~0 since the set then contains images of every class): possible gradient masking")
    # 2. gradient-free random search in the set.
    broken_random = torch.zeros(n, dtype=torch.bool)
    for _ in range(n_random):
        broken_random |= ~_robust(model, x, y, threat.random_init(x, generator))
    extra = broken_random & r_pgd
    if extra.float().mean() > 0:
        out.append(f"gradient_free: random points of the {threat.name} set break {int(extra.sum())} examples "
                   f"that PGD-40 left robust: gradients may be uninformative (masking)")
    # 3. single step vs multi step.
    one = PGD(threat, steps=1, step_size=threat.eps, random_start=False)
    r_one = _robust(model, x, y, one(model, x, y, generator))
    if (~r_one & r_pgd).float().mean() > tol:
        out.append(f"single_vs_multi: one step breaks {int((~r_one & r_pgd).sum())} examples that PGD-40 "
                   f"missed: the loss surface is flat or noisy near the data (masking)")
    # 4. the evaluation suite against PGD-40.
    r_eval = r_pgd & _robust(model, x, y, attack_for(threat, "apgd")(model, x, y, generator))
    gap = float(r_pgd.float().mean() - r_eval.float().mean())
    if gap > tol:
        out.append(f"stronger_attack: APGD-CE + APGD-T lower {threat.name} accuracy by {gap:.3f} below PGD-40: "
                   f"report the evaluation suite, PGD-40 overestimates robustness")
    # 5. gradient-free Square attack against the evaluation suite.
    if n_queries > 0:
        r_sq = _robust(model, x, y, Square(threat, n_queries=n_queries)(model, x, y, generator))
        extra = ~r_sq & r_eval
        if extra.any():
            out.append(f"square: the gradient-free Square attack ({n_queries} queries) breaks {int(extra.sum())} "
                       f"examples that APGD-CE + APGD-T left robust ({threat.name}): gradients are uninformative "
                       f"there (masking); the APGD-only accuracy is an overestimate, report the full suite")
    if emit:
        for w in out:
            _warnings.warn(w, GradientMaskingWarning, stacklevel=2)
    return out
