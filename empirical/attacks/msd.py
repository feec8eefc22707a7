"""Multi steepest descent (MSD): an attack on the union of several l_p balls.

Threat model: the union  U_k {x + r : |r|_{p_k} <= eps_k} intersected with the box [0, 1]^d, for the
threats k given (e.g. l_inf 0.3, l_2 2, l_1 10 on MNIST).

Algorithm (Maini, Wong & Kolter, "Adversarial robustness against the union of multiple perturbation
models", ICML 2020): start at x' = x (or at a random point of the first threat's set); at every step
compute g = grad_x' CE(f(x'), y) once, form for every threat k the candidate

    x'_k = Proj_k(x' + steepest-ascent step of threat k along g with step size step_size_k),

(``threat.step`` then ``threat.project``, so each candidate lies in its own ball), evaluate the loss of
every candidate and keep, per example, the candidate with the highest loss.  This implementation also
remembers, per example, the highest-loss point seen over all steps and returns it (never weaker).

Arguments: ``threats`` (sequence of Threat), ``steps`` (default 100), ``step_size`` (per threat:
a number, a dict name -> size, or None for 2.5 * eps_k / steps, Madry et al.'s rule), ``random_start``
(default False, as in MSD), ``loss`` ('ce', the attack module's losses).  Calling ``attack(model, x, y, generator=None)`` with x [n, C, H, W] in [0, 1]
and int64 labels y [n] returns x' of the same shape (deterministic given the generator).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from .base import Attack

__all__ = ["MSDAttack"]


class MSDAttack(Attack):
    """Multi steepest descent over the union of the given l_p threats (see the module docstring).

    Registered as ``get_attack("msd", threats, ...)``: its ``threat`` is the sequence of threats (a single
    threat is taken as a union of one).
    """

    name = "msd"

    def __init__(self, threats: Sequence[Any], steps: int = 100, step_size: float | Mapping[str, float] | None = None,
                 random_start: bool = False, loss: str = "ce"):
        if not isinstance(threats, (list, tuple)):
            threats = [threats]
        super().__init__(tuple(threats), loss)
        if len(threats) < 1:
            raise ValueError("MSD needs at least one threat")
        for t in threats:
            if not (hasattr(t, "step") and hasattr(t, "project")):
                raise ValueError(f"MSD takes l_p threats with step/project, got {getattr(t, 'name', t)!r}")
        if not (isinstance(steps, int) and steps >= 1):
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        self.threats, self.steps, self.random_start = list(threats), steps, bool(random_start)
        self.step_size = []
        for t in self.threats:
            if step_size is None:
                a = 2.5 * float(t.eps) / steps
            elif isinstance(step_size, Mapping):
                a = float(step_size.get(t.name, 2.5 * float(t.eps) / steps))
            else:
                a = float(step_size)
            if not a > 0:
                raise ValueError(f"step_size for threat {t.name!r} must be > 0, got {a}")
            self.step_size.append(a)

    def __repr__(self) -> str:
        names = ",".join(f"{t.name}:{t.eps:g}" for t in self.threats)
        return f"MSDAttack({names}, steps={self.steps}, step_size={self.step_size}, random_start={self.random_start})"

    def _loss(self, model, x, y) -> torch.Tensor:
        return self.loss_fn(model(x).float(), y)

    def perturb(self, model, x: torch.Tensor, y: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        x_adv = self.threats[0].random_init(x, generator) if self.random_start else x.clone()
        with torch.no_grad():
            best, best_loss = x_adv.clone(), self._loss(model, x_adv, y)
        view = (-1,) + (1,) * (x.dim() - 1)
        for _ in range(self.steps):
            x_adv.requires_grad_(True)
            with torch.enable_grad():
                grad, = torch.autograd.grad(self._loss(model, x_adv, y).sum(), x_adv)
            x_adv = x_adv.detach()
            with torch.no_grad():
                cands = [t.project(t.step(x_adv, grad, a), x) for t, a in zip(self.threats, self.step_size)]
                losses = torch.stack([self._loss(model, c, y) for c in cands])  # [k, n]
                step_loss, which = losses.max(0)
                x_adv = torch.stack(cands)[which, torch.arange(x.shape[0], device=x.device)]
                better = step_loss > best_loss
                best = torch.where(better.view(view), x_adv, best)
                best_loss = torch.where(better, step_loss, best_loss)
        return best.detach()

