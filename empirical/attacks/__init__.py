"""Attacks, one per file, in one registry: ``get_attack(name, threat, **hyper)`` and ``attack_for``.

Every attack is called as ``attack(model, x, y, generator=None) -> x_adv`` and is deterministic given
the generator. Shared hyperparameter names (torchattacks-like): ``eps``, ``step_size``, ``steps``,
``random_start``, ``restarts``, ``loss`` ('ce' | 'margin' | 'dlr'). (``alpha`` is not a step size in this
project: it is the time steps/N of the theory.)
"""

from __future__ import annotations

import inspect

from ..threats import AffineCombination, L1Ball, L2Ball, LinfBall, RotationTranslation
from .affine import AffineAttack
from .apgd import APGD
from .apgd_t import APGDT
from .base import Attack
from .fab_t import FABT
from .msd import MSDAttack
from .pgd import PGD
from .rt_grid import RTGrid
from .rt_random import RTRandom
from .slide import SLIDE
from .square import Square
from .worst_of import WorstOf

__all__ = ["ATTACKS", "get_attack", "attack_for", "register_attack", "Attack", "PGD", "SLIDE", "APGD", "APGDT",
           "FABT", "Square", "STRENGTHS", "RTGrid", "RTRandom", "AffineAttack", "WorstOf", "MSDAttack", "EVAL_TARGETS"]

ATTACKS: dict[str, type] = {
    "pgd": PGD, "slide": SLIDE, "apgd": APGD, "apgd_t": APGDT, "square": Square, "rt_grid": RTGrid,
    "rt_random": RTRandom, "affine": AffineAttack, "msd": MSDAttack,
    "fab_t": FABT,
}

#: The named strengths of :func:`attack_for`, cheapest first.
STRENGTHS = ("train", "apgd", "eval")

#: Target classes of APGD-T in the evaluation suite per norm (AutoAttack's standard version).
EVAL_TARGETS = {"linf": 9, "l2": 9, "l1": 5}


def register_attack(name: str, cls: type) -> None:
    """Add an attack class (built as ``cls(threat, **hyper)``) to the registry."""
    ATTACKS[name] = cls


def get_attack(name: str, threat, **hyper) -> Attack:
    """The attack ``name`` against ``threat`` with hyperparameters ``hyper``. ``pgd`` on an l_1 threat is SLIDE."""
    if name not in ATTACKS:
        raise ValueError(f"attack name must be one of {tuple(ATTACKS)}, got {name!r}")
    if name == "pgd" and isinstance(threat, L1Ball):
        name = "slide"
    return ATTACKS[name](threat, **hyper)


def _accepted(cls, overrides: dict, drop=()) -> dict:
    """The overrides that ``cls``'s constructor takes (a suite passes one set of overrides to attacks with
    different hyperparameters: ``steps`` to APGD and FAB-T, ``n_queries`` to Square, ``eps`` to all)."""
    names = set(inspect.signature(cls.__init__).parameters)
    if cls is APGDT:
        names |= set(inspect.signature(APGD.__init__).parameters)
    return {k: v for k, v in overrides.items() if k in names and k not in drop}


def attack_for(threat, strength: str = "eval", **overrides) -> Attack:
    """The default attack for a threat, at one of the named strengths :data:`STRENGTHS`.

    ``train`` (cheap, for adversarial training): PGD-10 (l_inf, l_2), SLIDE-10 (l_1), worst of 10 random
    rotation-translations, 10-step affine attack.

    ``eval`` (AutoAttack's standard version, Croce & Hein 2020): for l_inf, l_2 and l_1, in this order and each on
    the points the previous ones left robust, APGD-CE (100 steps; l_1: 5 restarts and the 3/2/1 eps schedule),
    APGD-T on the targeted DLR loss (100 steps per target; 9 targets for l_inf and l_2, 5 with the 3/2/1 eps
    schedule for l_1), FAB-T (100 steps per target, 9 targets) and Square (5000 queries, p_init 0.8); full grid
    (rt); affine attack with 100 steps and 5 restarts.

    ``apgd`` (a cheaper evaluation, for quick runs and the end of training): the first two attacks of ``eval``
    only (APGD-CE + APGD-T); identical to ``eval`` for rt and affine threats. Gradient masking can hide from
    it (FAB-T and Square are the attacks that catch it): every output records which strength produced it.

    ``overrides`` go to each attack's constructor that takes them (``eps`` to all; ``steps`` to APGD and FAB-T;
    ``loss`` and ``restarts`` to APGD-CE only; ``n_queries`` to Square).
    """
    if strength not in STRENGTHS:
        raise ValueError(f"strength must be one of {STRENGTHS}, got {strength!r}")
    train = strength == "train"
    if isinstance(threat, (LinfBall, L2Ball, L1Ball)):
        l1 = isinstance(threat, L1Ball)
        if not train:
            unknown = set(overrides) - set(_accepted(APGDT, overrides)) - set(_accepted(FABT, overrides)) \
                - set(_accepted(Square, overrides))
            if unknown:
                raise ValueError(f"no attack of the {strength!r} suite takes {sorted(unknown)}")
        if train:
            return (SLIDE if l1 else PGD)(threat, **{"steps": 10, **overrides})
        ce = APGD(threat, **{"steps": 100, "loss": "ce", "restarts": 5 if l1 else 1, **_accepted(APGD, overrides)})
        targeted = APGDT(threat, **{"steps": 100, "n_target_classes": EVAL_TARGETS[threat.name],
                                    **_accepted(APGDT, overrides, drop=("loss", "restarts"))})
        if strength == "apgd":
            return WorstOf([ce, targeted])
        fab = FABT(threat, **{"steps": 100, "n_target_classes": 9, **_accepted(FABT, overrides, drop=("restarts",))})
        square = Square(threat, **{"n_queries": 5000, "p_init": 0.8, **_accepted(Square, overrides, drop=("restarts",))})
        return WorstOf([ce, targeted, fab, square])
    if isinstance(threat, RotationTranslation):
        return RTRandom(threat, **{"k": 10, **overrides}) if train else RTGrid(threat, **overrides)
    if isinstance(threat, AffineCombination):
        if train:
            return AffineAttack(threat, **{"steps": 10, **overrides})
        return AffineAttack(threat, **{"steps": 100, "restarts": 5, **overrides})
    raise ValueError(f"no default attack for threat {threat!r}")

