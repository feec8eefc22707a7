"""The interface of a training scheme and the pieces several schemes share (see :mod:`empirical.schemes`)."""

from __future__ import annotations

import contextlib
from typing import Any, Sequence

import torch
from torch import nn

from .utils import stream_generator

__all__ = ["Scheme", "ThreatSampler", "unwrap", "eval_mode", "adversarial_example"]


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Evaluation mode while generating attacks (batch-norm statistics are neither used nor updated)."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


def adversarial_example(model: nn.Module, attack, x: torch.Tensor, y: torch.Tensor,
                        generator: torch.Generator | None) -> torch.Tensor:
    """``attack`` run on the unwrapped model in evaluation mode; the result is detached."""
    net = unwrap(model)
    with eval_mode(net):
        x_adv = attack(net, x, y, generator=generator)
    return x_adv.detach()


class Scheme:
    """Base class: the threats, their training attacks and the loss of a batch."""

    name = "base"
    #: Number of threats the scheme needs: (min, max); None = unbounded.
    n_threats: tuple[int, int | None] = (1, None)

    def __init__(self, threats: Sequence[Any] = (), *, attack_overrides: dict[str, Any] | None = None,
                 seed: int = 0, **options: Any):
        lo, hi = self.n_threats
        if len(threats) < lo or (hi is not None and len(threats) > hi):
            want = f"exactly {lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            raise ValueError(f"scheme {self.name!r} needs {want} threat(s) in --threats, got {len(threats)}")
        if options:
            raise ValueError(f"scheme {self.name!r} takes no options {sorted(options)}")
        self.threats = list(threats)
        self.base_threats = list(threats)
        self.budget_scale = 1.0
        self.attack_overrides = dict(attack_overrides or {})
        self.seed = int(seed)
        self.attacks = [self._make_attack(t) for t in self.threats]

    def set_budget_scale(self, scale: float) -> None:
        """Train against every l_p budget times ``scale`` in (0, 1] (budget warm-up; rotation-translation
        is left as it is, see ``scaled``). The attacks are rebuilt, so step sizes that follow the budget
        scale with it."""
        if not 0 < scale <= 1:
            raise ValueError(f"budget scale must be in (0, 1], got {scale}")
        if scale == self.budget_scale:
            return
        self.budget_scale = float(scale)
        self.threats = [t.scaled(scale) for t in self.base_threats]
        self.attacks = [self._make_attack(t) for t in self.threats]
        self._rebuild()

    def _rebuild(self) -> None:
        """Hook for schemes with attacks of their own (MSD) after the threats changed."""

    def _make_attack(self, threat):
        from .attacks import attack_for

        # a threat attacked by search (rotation-translation) has no step count or step size to override
        overrides = dict(self.attack_overrides) if threat.gradient_based else {}
        return attack_for(threat, strength="train", **overrides)

    # --- state (for exact resume); stateless by default ---
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"scheme {self.name!r} has no state, got keys {sorted(state)}")

    def to(self, device: torch.device) -> "Scheme":
        return self

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             generator: torch.Generator | None) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError


class ThreatSampler:
    """Draws one threat index per batch from its own generator, identical on every process."""

    def __init__(self, k: int, seed: int):
        self.k = k
        self.generator = stream_generator(seed, "threat_sampler")

    def draw(self) -> int:
        return int(torch.randint(self.k, (1,), generator=self.generator))

    def state_dict(self):
        return {"sampler": self.generator.get_state()}

    def load_state_dict(self, state):
        self.generator.set_state(state["sampler"])
