"""Rotation-translation attack by worst-of-k random draws (Engstrom et al. 2019).

Threat: S(x) = {T_theta(x) : |phi| <= max_angle, |dx|, |dy| <= max_shift} (:class:`RotationTranslation`).
Draws ``k`` parameter vectors theta uniformly in the allowed box, independently per example, and keeps the
worst transform (misclassified first, then highest loss).

Arguments: ``threat``; ``k`` = 10; ``loss`` = 'ce'. Draws come from ``generator``.
"""

from __future__ import annotations

import torch

from ..threats import RotationTranslation
from .base import Attack, Best

__all__ = ["RTRandom"]


class RTRandom(Attack):
    name = "rt_random"

    def __init__(self, threat, k: int = 10, loss: str = "ce", eps=None):
        if not isinstance(threat, RotationTranslation):
            raise ValueError(f"rt_random attacks the rt threat, got {threat!r}")
        if eps is not None:
            threat = threat.replace(max_angle=float(eps[0]), max_shift=float(eps[1]))
        super().__init__(threat, loss)
        if not (isinstance(k, int) and k >= 1):
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self.k = k

    @torch.no_grad()
    def perturb(self, model, x, y, generator):
        best = None
        for _ in range(self.k):
            xt = self.threat.apply(x, self.threat.random_params(x.shape[0], generator))
            logits = model(xt)
            loss, fooled = self.loss_fn(logits, y), logits.argmax(1) != y
            if best is None:
                best = Best(xt, loss, fooled)
            else:
                best.update(xt, loss, fooled)
        return best.x
