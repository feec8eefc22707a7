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

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from .mng import MNGAC
from .scheme_base import Scheme, ThreatSampler, adversarial_example, eval_mode, unwrap

__all__ = ["Scheme", "SCHEMES", "get_scheme", "scheme_names", "unwrap", "adversarial_example", "eval_mode"]


class Natural(Scheme):
    """Standard training: CE(f(x), y)."""

    name = "natural"
    n_threats = (0, None)  # threats, if given, are used only by the final evaluation

    def _make_attack(self, threat):
        return None

    def loss(self, model, x, y, generator):
        return F.cross_entropy(model(x), y), {}


class Adversarial(Scheme):
    """Single-threat adversarial training: CE(f(x'), y), x' = training attack of the one threat."""

    name = "adv"
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


class Average(Scheme):
    """Tramer & Boneh's 'avg': mean over threats and examples of CE(f(x'_k), y)."""

    name = "avg"
    n_threats = (2, None)

    def loss(self, model, x, y, generator):
        losses = _per_threat_losses(model, self.attacks, x, y, generator)
        return losses.mean(), {f"loss_{t.name}": float(l) for t, l in zip(self.threats, losses.detach().mean(1))}


class Maximum(Scheme):
    """Tramer & Boneh's 'max': mean over examples of the largest CE over threats."""

    name = "max"
    n_threats = (2, None)

    def loss(self, model, x, y, generator):
        losses = _per_threat_losses(model, self.attacks, x, y, generator)
        worst, which = losses.max(0)
        stats = {f"frac_{t.name}": float((which == j).float().mean()) for j, t in enumerate(self.threats)}
        return worst.mean(), stats


class MSD(Scheme):
    """Maini et al.'s MSD training: CE(f(x'), y), x' from multi steepest descent over all threats."""

    name = "msd"
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
        if not threat.gradient_based:
            raise ValueError(f"scheme 'msd' takes gradient-based threats only (l_p balls), not {threat.name!r}")
        return None

    def loss(self, model, x, y, generator):
        x_adv = adversarial_example(model, self.msd, x, y, generator)
        return F.cross_entropy(model(x_adv), y), {}


class Stochastic(Scheme):
    """Stochastic adversarial training: CE(f(x'_k), y) with k uniform over the threats, one k per batch."""

    name = "sat"
    n_threats = (2, None)

    def __init__(self, threats, *, attack_overrides=None, seed=0, **options):
        super().__init__(threats, attack_overrides=attack_overrides, seed=seed, **options)
        self.sampler = ThreatSampler(len(self.threats), self.seed)

    def state_dict(self):
        return self.sampler.state_dict()

    def load_state_dict(self, state):
        self.sampler.load_state_dict(state)

    def loss(self, model, x, y, generator):
        k = self.sampler.draw()
        x_adv = adversarial_example(model, self.attacks[k], x, y, generator)
        return F.cross_entropy(model(x_adv), y), {"threat": float(k)}


#: The registry of training schemes, in the order of the documentation table.
SCHEMES: dict[str, type[Scheme]] = {cls.name: cls for cls in (Natural, Adversarial, Average, Maximum, MSD,
                                                               Stochastic, MNGAC)}


def get_scheme(name: str, threats: Sequence[Any] = (), **kwargs) -> Scheme:
    """A scheme by name (one of ``SCHEMES``)."""
    if name not in SCHEMES:
        raise ValueError(f"scheme must be one of {scheme_names()}, got {name!r}")
    return SCHEMES[name](threats, **kwargs)


def scheme_names() -> tuple[str, ...]:
    return tuple(SCHEMES)
