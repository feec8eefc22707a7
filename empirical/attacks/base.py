"""The interface every attack shares, and the bookkeeping of the worst point found so far.

An attack is built as ``Attack(threat, **hyper)`` and called as ``attack(model, x, y, generator=None)``;
it returns ``x_adv`` [n, C, H, W] in the threat's set S(x). It never changes the model's mode
(train/eval) or its parameter gradients. Randomness comes only from ``generator`` (None: torch's global
generator), so the same generator state gives the same ``x_adv``.
"""

from __future__ import annotations

import torch

from .losses import get_loss

__all__ = ["Attack", "Best", "loss_and_grad", "logits_of"]


def loss_and_grad(model, x_adv: torch.Tensor, y: torch.Tensor, loss_fn):
    """Per-example loss [n], its gradient with respect to the input, and the logits (all detached)."""
    x_adv = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x_adv)
        loss = loss_fn(logits, y)
        (grad,) = torch.autograd.grad(loss.sum(), x_adv)
    return loss.detach(), grad.detach(), logits.detach()


@torch.no_grad()
def logits_of(model, x: torch.Tensor) -> torch.Tensor:
    return model(x)


class Best:
    """Per example, the worst point seen: a misclassified point beats a correctly classified one; among
    equals the higher loss wins."""

    def __init__(self, x: torch.Tensor, loss: torch.Tensor, fooled: torch.Tensor):
        self.x, self.loss, self.fooled = x.detach().clone(), loss.clone(), fooled.clone()

    def update(self, x: torch.Tensor, loss: torch.Tensor, fooled: torch.Tensor) -> None:
        better = (fooled & ~self.fooled) | ((fooled == self.fooled) & (loss > self.loss))
        self.x = torch.where(better.reshape(-1, *([1] * (x.dim() - 1))), x.detach(), self.x)
        self.loss = torch.where(better, loss, self.loss)
        self.fooled = self.fooled | fooled

    def update_at(self, idx: torch.Tensor, x: torch.Tensor, loss: torch.Tensor, fooled: torch.Tensor) -> None:
        """``update`` for the examples ``idx`` only (x, loss, fooled hold those examples, in that order)."""
        better = (fooled & ~self.fooled[idx]) | ((fooled == self.fooled[idx]) & (loss > self.loss[idx]))
        sel = idx[better]
        self.x[sel] = x[better].detach().to(self.x.dtype)
        self.loss[sel] = loss[better].to(self.loss.dtype)
        self.fooled[idx] = self.fooled[idx] | fooled


class Attack:
    """Base class. Subclasses set ``name`` and implement ``perturb(model, x, y, generator)``."""

    name = "attack"

    def __init__(self, threat, loss: str = "ce"):
        self.threat = threat
        self.loss = loss
        self.loss_fn = get_loss(loss)

    def __call__(self, model, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None):
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} examples but y has {y.shape[0]}")
        if x.shape[0] == 0:
            return x.clone()
        return self.perturb(model, x.detach(), y, generator).detach()

    def perturb(self, model, x, y, generator):  # pragma: no cover - abstract
        raise NotImplementedError

    def hyper(self) -> dict:
        """The hyperparameters, for provenance."""
        return {k: v for k, v in vars(self).items() if k not in ("threat", "loss_fn", "attacks")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyper().items())
        return f"{type(self).__name__}({self.threat!r}, {args})"


def check_positive_int(name: str, value) -> int:
    if not (isinstance(value, int) and value >= 1):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_step(name: str, value) -> float:
    if not (isinstance(value, (int, float)) and value > 0):
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return float(value)
