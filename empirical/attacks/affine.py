"""Attack on an affine combination of two perturbation types (Tramer & Boneh 2019).

Threat: S(x) = {x + beta r_a + (1 - beta) r_b : r_a in R_a(x), r_b in R_b(x)} ∩ [0, 1]^d
(:class:`AffineCombination`). Two l_p parts: joint PGD on (r_a, r_b); the gradient of the loss at
x' = clamp(x + beta r_a + (1 - beta) r_b) with respect to each part is taken by autograd, each part moves
by its own steepest-ascent step (sign / normalised / sparse top-q) of size ``step_size`` = (a, b) and is
projected exactly onto its ball. Rotation-translation first part: r_a = T_theta(x) - x with theta drawn at
random per restart (restart 0: theta = 0), then PGD on r_b at that theta; the worst restart is kept.

Arguments: ``threat``; ``steps`` = 40; ``restarts`` = 1; ``step_size`` = (step_a, step_b) (default
2.5 eps_part / steps each); ``random_start`` = True; ``loss`` = 'ce'.
"""

from __future__ import annotations

import torch

from ..threats import AffineCombination, RotationTranslation
from .base import Attack, Best, check_positive_int

__all__ = ["AffineAttack"]


def _flat(t):
    return t.reshape(t.shape[0], -1)


class AffineAttack(Attack):
    name = "affine"

    def __init__(self, threat, steps: int = 40, restarts: int = 1, step_size=None, random_start: bool = True,
                 loss: str = "ce", eps=None):
        if not isinstance(threat, AffineCombination):
            raise ValueError(f"affine attacks an affine:<a>:<b> threat, got {threat!r}")
        if eps is not None:
            threat = AffineCombination(_with_eps(threat.a, eps[0]), _with_eps(threat.b, eps[1]), threat.beta)
        super().__init__(threat, loss)
        self.steps = check_positive_int("steps", steps)
        self.restarts = check_positive_int("restarts", restarts)
        self.random_start = bool(random_start)
        a_eps = 0.0 if isinstance(threat.a, RotationTranslation) else threat.a.eps
        self.step_size = tuple(step_size) if step_size is not None else (2.5 * a_eps / steps, 2.5 * threat.b.eps / steps)

    def _part_step(self, part, r, g, step_size):
        if part.name == "l1":
            r = r + step_size * part.sparse_direction(r, g, box=False)
        else:
            r = part.step(r, g, step_size)
        return part.project_delta(_flat(r)).reshape(r.shape)

    def perturb(self, model, x, y, generator):
        T = self.threat
        rt = isinstance(T.a, RotationTranslation)
        best = None
        for restart in range(self.restarts):
            if rt:
                theta = T.a.random_params(x.shape[0], generator) if restart > 0 else torch.zeros(x.shape[0], 3)
                r_a = (T.a.apply(x, theta) - x).detach()
            else:
                r_a = T.a.random_delta(x, generator) if self.random_start else torch.zeros_like(x)
            r_b = T.b.random_delta(x, generator) if self.random_start else torch.zeros_like(x)
            for step in range(self.steps + 1):
                r_a.requires_grad_(not rt)
                r_b.requires_grad_(True)
                with torch.enable_grad():
                    x_adv = T.combine(x, r_a, r_b)
                    logits = model(x_adv)
                    loss = self.loss_fn(logits, y)
                    grads = torch.autograd.grad(loss.sum(), [r_b] if rt else [r_a, r_b])
                loss, fooled = loss.detach(), logits.argmax(1) != y
                if best is None:
                    best = Best(x_adv, loss, fooled)
                else:
                    best.update(x_adv.detach(), loss, fooled)
                if step == self.steps:
                    break
                with torch.no_grad():
                    if not rt:
                        r_a = self._part_step(T.a, r_a.detach(), grads[0], self.step_size[0])
                    r_b = self._part_step(T.b, r_b.detach(), grads[-1], self.step_size[1])
            r_a = r_a.detach()
        return best.x


def _with_eps(part, eps):
    if isinstance(part, RotationTranslation):
        return part.replace(max_angle=float(eps[0]), max_shift=float(eps[1]))
    return part.replace(eps=float(eps))
