"""Training schemes: named choices over one training loop.

A scheme maps a batch to the loss the loop minimises::

    loss, stats = scheme.loss(model, x, y, generator)

``model`` is the network being trained (possibly wrapped in DistributedDataParallel; attacks run on the
unwrapped module so that no gradient synchronisation is triggered by them), ``x`` [n, C, H, W] in [0, 1],
``y`` int64 [n], ``generator`` the loop's ``torch.Generator`` for the attacks' random starts.  ``stats``
is a dict of floats for logging.  Schemes with state of their own (SAT's threat sampler, MNG-AC's noise
generator) expose ``state_dict()`` / ``load_state_dict()`` so that checkpoints resume them exactly.

Registered schemes (``SCHEMES``; the multi-threat ones use every threat of ``--threats``):

==========  ============================================================================================
natural     cross-entropy on clean inputs
adv         single-threat adversarial training (Madry et al. 2018): CE(f(x'), y), x' the training attack
            of the one threat (Adv_inf, Adv_1, Adv_2, Adv_RT for linf, l1, l2, rt)
avg         Tramer & Boneh (2019) 'avg': the mean over threats k of CE(f(x'_k), y), i.e. training on the
            adversarial examples of every threat
max         Tramer & Boneh (2019) 'max': per example the threat with the largest loss,
            mean_i max_k CE(f(x'_{k,i}), y_i)
msd         Maini, Wong & Kolter (2020): CE(f(x'), y) with x' from multi steepest descent
            (empirical/attacks/msd.py), which at each step keeps the l_p step of highest loss
sat         stochastic adversarial training (Madaan et al. 2021): one threat drawn uniformly per batch
mng_ac      SAT + adversarial consistency + meta-learned noise generator (empirical/mng.py)
==========  ============================================================================================
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Scheme", "SCHEMES", "get_scheme", "register", "unwrap", "adversarial_example"]

SCHEMES: dict[str, type["Scheme"]] = {}


def register(name: str) -> Callable[[type["Scheme"]], type["Scheme"]]:
    def deco(cls: type[Scheme]) -> type[Scheme]:
        cls.name = name
        SCHEMES[name] = cls
        return cls
    return deco


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
        is left as it is). The attacks are rebuilt, so step sizes that follow the budget scale with it."""
        if not 0 < scale <= 1:
            raise ValueError(f"budget scale must be in (0, 1], got {scale}")
        if scale == self.budget_scale:
            return
        self.budget_scale = float(scale)
        self.threats = [t if getattr(t, "name", "") == "rt" else t.replace(eps=float(t.eps) * scale)
                        for t in self.base_threats]
        self.attacks = [self._make_attack(t) for t in self.threats]
        self._rebuild()

    def _rebuild(self) -> None:
        """Hook for schemes with attacks of their own (MSD) after the threats changed."""

    def _make_attack(self, threat):
        from .attacks import attack_for

        overrides = dict(self.attack_overrides)
        if getattr(threat, "name", "") == "rt":  # rotation-translation: grid/random search, no step count
            overrides = {}
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


@register("natural")
class Natural(Scheme):
    """Standard training: CE(f(x), y)."""

    n_threats = (0, None)  # threats, if given, are used only by the final evaluation

    def _make_attack(self, threat):
        return None

    def loss(self, model, x, y, generator):
        return F.cross_entropy(model(x), y), {}


@register("adv")
class Adversarial(Scheme):
    """Single-threat adversarial training: CE(f(x'), y), x' = training attack of the one threat."""

    n_threats = (1, 1)

    def loss(self, model, x, y, generator):
        x_adv = adversarial_example(model, self.attacks[0], x, y, generator)
        return F.cross_entropy(model(x_adv), y), {}


def _per_threat_losses(model, attacks, x, y, generator) -> torch.Tensor:
    """CE of every threat's adversarial examples in ONE forward pass: tensor [k, n]."""
    xs = [adversarial_example(model, a, x, y, generator) for a in attacks]
    logits = model(torch.cat(xs))
    k, n = len(xs), x.shape[0]
    return F.cross_entropy(logits, y.repeat(k), reduction="none").view(k, n)


@register("avg")
class Average(Scheme):
    """Tramer & Boneh's 'avg': mean over threats and examples of CE(f(x'_k), y)."""

    n_threats = (2, None)

    def loss(self, model, x, y, generator):
        losses = _per_threat_losses(model, self.attacks, x, y, generator)
        return losses.mean(), {f"loss_{t.name}": float(l) for t, l in zip(self.threats, losses.detach().mean(1))}


@register("max")
class Maximum(Scheme):
    """Tramer & Boneh's 'max': mean over examples of the largest CE over threats."""

    n_threats = (2, None)

    def loss(self, model, x, y, generator):
        losses = _per_threat_losses(model, self.attacks, x, y, generator)
        worst, which = losses.max(0)
        stats = {f"frac_{t.name}": float((which == j).float().mean()) for j, t in enumerate(self.threats)}
        return worst.mean(), stats


@register("msd")
class MSD(Scheme):
    """Maini et al.'s MSD training: CE(f(x'), y), x' from multi steepest descent over all threats."""

    n_threats = (2, None)

    def __init__(self, threats, *, attack_overrides=None, seed=0, **options):
        super().__init__(threats, attack_overrides=attack_overrides, seed=seed, **options)
        # Training default: 10 steps, like the other training attacks (attack_for(..., "train")).
        self._msd_kw = {"steps": 10,
                        **{k: v for k, v in self.attack_overrides.items() if k in ("steps", "random_start")}}
        self._rebuild()

    def _rebuild(self) -> None:
        """The MSD attack over the current threats (at construction, and after a budget change)."""
        from .attacks.msd import MSDAttack

        self.msd = MSDAttack(self.threats, **self._msd_kw)

    def _make_attack(self, threat):
        if getattr(threat, "name", "") == "rt":
            raise ValueError("scheme 'msd' takes l_p threats only (linf, l2, l1), not 'rt'")
        return None

    def loss(self, model, x, y, generator):
        x_adv = adversarial_example(model, self.msd, x, y, generator)
        return F.cross_entropy(model(x_adv), y), {}


class _ThreatSampler:
    """Draws one threat index per batch from its own generator, identical on every process."""

    def __init__(self, k: int, seed: int):
        self.k = k
        self.generator = torch.Generator().manual_seed(int(seed) + 7919)

    def draw(self) -> int:
        return int(torch.randint(self.k, (1,), generator=self.generator))

    def state_dict(self):
        return {"sampler": self.generator.get_state()}

    def load_state_dict(self, state):
        self.generator.set_state(state["sampler"])


@register("sat")
class Stochastic(Scheme):
    """Stochastic adversarial training: CE(f(x'_k), y) with k uniform over the threats, one k per batch."""

    n_threats = (2, None)

    def __init__(self, threats, *, attack_overrides=None, seed=0, **options):
        super().__init__(threats, attack_overrides=attack_overrides, seed=seed, **options)
        self.sampler = _ThreatSampler(len(self.threats), self.seed)

    def state_dict(self):
        return self.sampler.state_dict()

    def load_state_dict(self, state):
        self.sampler.load_state_dict(state)

    def loss(self, model, x, y, generator):
        k = self.sampler.draw()
        x_adv = adversarial_example(model, self.attacks[k], x, y, generator)
        return F.cross_entropy(model(x_adv), y), {"threat": float(k)}


def get_scheme(name: str, threats: Sequence[Any] = (), **kwargs) -> Scheme:
    """A scheme by name (one of ``SCHEMES``)."""
    if name == "mng_ac" and name not in SCHEMES:
        from . import mng  # noqa: F401  (registers itself)
    if name not in SCHEMES:
        raise ValueError(f"scheme must be one of {scheme_names()}, got {name!r}")
    return SCHEMES[name](threats, **kwargs)


def scheme_names() -> tuple[str, ...]:
    from . import mng  # noqa: F401

    return tuple(SCHEMES)
