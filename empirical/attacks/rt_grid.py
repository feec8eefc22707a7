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
        grid = self.threat.grid(self.n_angles, self.n_shifts)
        logits = model(x)
        best = Best(x, self.loss_fn(logits, y), logits.argmax(1) != y)
        for theta in grid:
            # Only the examples not yet misclassified can change their answer: attack those alone.
            idx = (~best.fooled).nonzero().flatten()
            if idx.numel() == 0:
                break
            xt = self.threat.apply(x[idx], theta.expand(idx.numel(), 3))
            logits = model(xt)
            loss, fooled = self.loss_fn(logits, y[idx]), logits.argmax(1) != y[idx]
            better = fooled | (loss > best.loss[idx])
            sel = idx[better]
            best.x[sel] = xt[better]
            best.loss[sel] = loss[better]
            best.fooled[sel] = fooled[better]
        return best.x
