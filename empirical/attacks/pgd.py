"""PGD (Madry et al. 2018): projected steepest ascent with random start and restarts.

Threat: an l_p ball ∩ box (``linf``: sign steps; ``l2``: normalised gradient steps; ``l1``: use SLIDE,
:mod:`.slide`, which is this loop with the sparse l_1 step).

    x^0 = random point of S(x) (random_start) or x;   x^{k+1} = P_S(x^k + step_size * step direction(grad L(x^k)))

Arguments: ``threat``; ``eps`` (overrides threat.eps); ``step_size`` (default 2.5 eps / steps);
``steps`` = 40; ``random_start`` = True; ``restarts`` = 1; ``loss`` = 'ce' | 'margin' | 'dlr'.
Returns, per example, the worst iterate over all steps and restarts (misclassified first, then highest loss).
"""

from __future__ import annotations

import torch

from ..threats import L1Ball, L2Ball, LinfBall
from .base import Attack, Best, check_positive_int, check_step, loss_and_grad

__all__ = ["PGD"]


class PGD(Attack):
    name = "pgd"
    threats = (LinfBall, L2Ball, L1Ball)

    def __init__(self, threat, eps: float | None = None, step_size: float | None = None, steps: int = 40,
                 random_start: bool = True, restarts: int = 1, loss: str = "ce"):
        if not isinstance(threat, self.threats):
            raise ValueError(f"{self.name} attacks {[t.name for t in self.threats]} threats, got {threat!r}")
        if eps is not None:
            threat = threat.replace(eps=float(eps))
        super().__init__(threat, loss)
        self.steps = check_positive_int("steps", steps)
        self.restarts = check_positive_int("restarts", restarts)
        self.step_size = check_step("step_size", step_size) if step_size is not None else 2.5 * threat.eps / steps
        self.random_start = bool(random_start)

    def perturb(self, model, x, y, generator):
        threat, step_size = self.threat, self.step_size
        best = None
        for _ in range(self.restarts):
            x_adv = threat.random_init(x, generator) if self.random_start else x.clone()
            x_adv = threat.project(x_adv, x)
            for _ in range(self.steps):
                loss, grad, logits = loss_and_grad(model, x_adv, y, self.loss_fn)
                fooled = logits.argmax(1) != y
                if best is None:
                    best = Best(x_adv, loss, fooled)
                else:
                    best.update(x_adv, loss, fooled)
                x_adv = threat.project(threat.step(x_adv, grad, step_size), x)
            with torch.no_grad():
                logits = model(x_adv)
            best.update(x_adv, self.loss_fn(logits, y), logits.argmax(1) != y)
        return best.x
