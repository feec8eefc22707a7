"""APGD-T, targeted APGD on the targeted DLR loss (Croce & Hein, ICML 2020), for l_inf, l_2 and l_1.

Threat: S_eps(x) = {x + r : |r|_p <= eps} ∩ [0, 1]^d, p in {inf, 2, 1}.

For j = 2, ..., n_target_classes + 1, on the points still correctly classified: the target t is the class of
the j-th largest clean logit, and APGD (:mod:`.apgd`, the same iteration, step sizes, l_1 sparsity and
large-budget schedule) maximises the targeted DLR loss

    L_t(z) = -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12),   pi the logits in decreasing order,

which is invariant to shifts and positive rescalings of the logits (so a model that saturates or rescales its
outputs cannot hide the direction of the target). AutoAttack's standard version runs 9 targets for l_inf and
l_2 and 5 targets with use_largereps for l_1, one restart per target.

Arguments: those of :class:`APGD` (``loss`` is fixed) and ``n_target_classes`` = 9 (at most K - 1). Models
with fewer than 4 classes (where the targeted DLR loss is undefined) get the targeted margin z_t - z_y. Returns,
per example, an adversarial point of S_eps(x) if one was found, else the highest-margin point over the targets.
"""

from __future__ import annotations

import torch

from .apgd import APGD
from .base import Best, check_positive_int
from .losses import dlr_targeted, margin

__all__ = ["APGDT"]


class APGDT(APGD):
    name = "apgd_t"

    def __init__(self, threat, n_target_classes: int = 9, **hyper):
        if "loss" in hyper:
            raise ValueError("apgd_t fixes its loss (targeted dlr); do not pass loss")
        super().__init__(threat, loss="margin", **hyper)
        self.n_target_classes = check_positive_int("n_target_classes", n_target_classes)

    def perturb(self, model, x, y, generator):
        with torch.no_grad():
            logits = model(x)
        small = logits.shape[1] < 4  # the targeted dlr loss needs 4 logits: use the targeted margin z_t - z_y
        order = logits.argsort(dim=1, descending=True)
        best = Best(x, margin(logits, y), logits.argmax(1) != y)
        n_t = min(self.n_target_classes, logits.shape[1] - 1)
        for j in range(1, n_t + 1):
            for _ in range(self.restarts):
                idx = (~best.fooled).nonzero().flatten()
                if idx.numel() == 0:
                    return best.x
                target = order[idx, j]

                def loss_fn(z, yy, target=target):
                    if small:
                        return z.gather(1, target[:, None])[:, 0] - z.gather(1, yy[:, None])[:, 0]
                    return dlr_targeted(z, yy, target)

                xc, _, fc = self.attack_once(model, x[idx], y[idx], loss_fn, generator)
                with torch.no_grad():
                    lc = margin(model(xc), y[idx])
                best.update_at(idx, xc, lc, fc)
        return best.x
