"""Rotation-translation attack by full grid search (Engstrom et al. 2019).

Threat: S(x) = {T_theta(x) : |phi| <= max_angle, |dx|, |dy| <= max_shift} (:class:`RotationTranslation`).
Evaluates every theta of the grid ``n_angles`` x ``n_shifts`` x ``n_shifts`` (ends included; default 31 x 7
x 7 = 1,519 points: angle steps of 2 degrees and integer pixel shifts for the MNIST budget) and keeps, per
example, a misclassified transform if one exists, else the one with the highest loss.

Arguments: ``threat``; ``n_angles`` = 31; ``n_shifts`` = 7; ``loss`` = 'ce'. Deterministic (the generator is
not used).
"""

from __future__ import annotations

import torch

from ..threats import RotationTranslation
from .base import Attack, Best

__all__ = ["RTGrid"]


class RTGrid(Attack):
    name = "rt_grid"

    def __init__(self, threat, n_angles: int = 31, n_shifts: int = 7, loss: str = "ce", eps=None):
        if not isinstance(threat, RotationTranslation):
            raise ValueError(f"rt_grid attacks the rt threat, got {threat!r}")
        if eps is not None:
            threat = threat.replace(max_angle=float(eps[0]), max_shift=float(eps[1]))
        super().__init__(threat, loss)
        if n_angles < 1 or n_shifts < 1:
            raise ValueError("n_angles and n_shifts must be >= 1")
        self.n_angles, self.n_shifts = int(n_angles), int(n_shifts)

    @torch.no_grad()
    def perturb(self, model, x, y, generator):
        n = x.shape[0]
        best = None
        for theta in self.threat.grid(self.n_angles, self.n_shifts):
            xt = self.threat.apply(x, theta.expand(n, 3))
            logits = model(xt)
            loss, fooled = self.loss_fn(logits, y), logits.argmax(1) != y
            if best is None:
                best = Best(xt, loss, fooled)
            else:
                best.update(xt, loss, fooled)
            if bool(best.fooled.all()):
                break
        return best.x
