"""Worst of several attacks on the same threat: run them in order, each on the points the previous ones left
correctly classified (as AutoAttack does), and keep the first adversarial point found per example.

Arguments: ``attacks`` a list of attacks sharing one threat. Deterministic given the generator (the attacks
draw from it in order).
"""

from __future__ import annotations

import torch

from .base import Attack

__all__ = ["WorstOf"]


class WorstOf(Attack):
    name = "worst_of"

    def __init__(self, attacks):
        if not attacks:
            raise ValueError("attacks must be a non-empty list")
        super().__init__(attacks[0].threat, attacks[0].loss)
        self.attacks = list(attacks)

    def hyper(self) -> dict:
        return {"attacks": [repr(a) for a in self.attacks]}

    def perturb(self, model, x, y, generator):
        x_adv = x.clone()
        with torch.no_grad():
            robust = model(x).argmax(1) == y
        for attack in self.attacks:
            idx = robust.nonzero().flatten()
            if idx.numel() == 0:
                break
            xa = attack(model, x[idx], y[idx], generator)
            with torch.no_grad():
                still = model(xa).argmax(1) == y[idx]
            x_adv[idx] = xa
            robust[idx] = still
        return x_adv
