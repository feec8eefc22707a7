"""Worst of several attacks on the same threat: run them in order, each on the points the previous ones left
correctly classified (as AutoAttack does), and keep the first adversarial point found per example.

Arguments: ``attacks`` a list of attacks sharing one threat. Deterministic given the generator (the attacks
draw from it in order). :meth:`WorstOf.perturb_log` also returns, per example, which attack broke it first (the
per-example attack log of the evaluation).
"""

from __future__ import annotations

import time

import torch

from .base import Attack

__all__ = ["WorstOf", "ROBUST", "CLEAN_WRONG"]

#: Codes of :meth:`WorstOf.perturb_log` for examples that no attack broke.
ROBUST, CLEAN_WRONG = -1, -2


class WorstOf(Attack):
    name = "worst_of"

    def __init__(self, attacks):
        if not attacks:
            raise ValueError("attacks must be a non-empty list")
        super().__init__(attacks[0].threat, attacks[0].loss)
        self.attacks = list(attacks)
        #: process CPU seconds spent in each attack, summed over the calls of this object
        self.cpu_seconds = [0.0] * len(self.attacks)

    def hyper(self) -> dict:
        return {"attacks": [repr(a) for a in self.attacks]}

    def names(self) -> list[str]:
        """A name per attack, in order (``apgd-ce``, ``apgd-t``, ``fab-t``, ``square``, ...)."""
        out = []
        for a in self.attacks:
            base = a.name.replace("_", "-") + (f"-{a.loss}" if a.name == "apgd" else "")
            out.append(base if base not in out else f"{base}#{len(out)}")
        return out

    def perturb(self, model, x, y, generator):
        return self.perturb_log(model, x, y, generator)[0]

    def perturb_log(self, model, x, y, generator=None):
        """(x_adv, first): ``first`` int64 [n] is the index in ``attacks`` of the attack that first broke
        example i, :data:`ROBUST` (-1) if none did, :data:`CLEAN_WRONG` (-2) if x_i is misclassified already."""
        x = x.detach()
        x_adv = x.clone()
        with torch.no_grad():
            robust = model(x).argmax(1) == y
        first = torch.where(robust, ROBUST, CLEAN_WRONG).to(torch.long).cpu()
        for j, attack in enumerate(self.attacks):
            idx = robust.nonzero().flatten()
            if idx.numel() == 0:
                break
            t0 = time.process_time()
            xa = attack(model, x[idx], y[idx], generator)
            with torch.no_grad():
                still = model(xa).argmax(1) == y[idx]
            self.cpu_seconds[j] += time.process_time() - t0
            x_adv[idx] = xa.detach()
            robust[idx] = still
            first[idx[~still].cpu()] = j
        return x_adv, first
