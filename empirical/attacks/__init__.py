"""Attacks, one per file, in one registry: ``get_attack(name, threat, **hyper)`` and ``attack_for``.

Every attack is called as ``attack(model, x, y, generator=None) -> x_adv`` and is deterministic given
the generator. Shared hyperparameter names (torchattacks-like): ``eps``, ``step_size``, ``steps``,
``random_start``, ``restarts``, ``loss`` ('ce' | 'margin' | 'dlr'). (``alpha`` is not a step size in this
project: it is the time steps/N of the theory.)
"""

from __future__ import annotations

from ..threats import AffineCombination, L1Ball, L2Ball, LinfBall, RotationTranslation
from .affine import AffineAttack
from .apgd import APGD
from .apgd_t import APGDT
from .base import Attack
from .msd import MSDAttack
from .pgd import PGD
from .rt_grid import RTGrid
from .rt_random import RTRandom
from .slide import SLIDE
from .square import Square
from .worst_of import WorstOf

__all__ = ["ATTACKS", "get_attack", "attack_for", "register_attack", "Attack", "PGD", "SLIDE", "APGD", "APGDT",
           "Square", "RTGrid", "RTRandom", "AffineAttack", "WorstOf", "MSDAttack", "EVAL_TARGETS"]

ATTACKS: dict[str, type] = {
    "pgd": PGD, "slide": SLIDE, "apgd": APGD, "apgd_t": APGDT, "square": Square, "rt_grid": RTGrid,
    "rt_random": RTRandom, "affine": AffineAttack, "msd": MSDAttack,
}

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


def attack_for(threat, strength: str = "eval", **overrides) -> Attack:
    """The default attack for a threat.

    ``train`` (cheap, for adversarial training): PGD-10 (l_inf, l_2), SLIDE-10 (l_1), worst of 10 random
    rotation-translations, 10-step affine attack. ``eval`` (strongest; AutoAttack's APGD-CE + APGD-T, standard
    version): APGD-CE (100 steps; l_1: 5 restarts and the 3/2/1 eps schedule) then, on the points it left
    robust, APGD-T on the targeted DLR loss (100 steps per target, 9 targets for l_inf and l_2, 5 with the
    3/2/1 eps schedule for l_1); full grid (rt); affine attack with 100 steps and 5 restarts. ``overrides``
    go to each attack's constructor (for l_p: to both APGD-CE and APGD-T).
    """
    if strength not in ("train", "eval"):
        raise ValueError(f"strength must be 'train' or 'eval', got {strength!r}")
    train = strength == "train"
    if isinstance(threat, (LinfBall, L2Ball, L1Ball)):
        l1 = isinstance(threat, L1Ball)
        if train:
            return (SLIDE if l1 else PGD)(threat, **{"steps": 10, **overrides})
        ce = APGD(threat, **{"steps": 100, "loss": "ce", "restarts": 5 if l1 else 1, **overrides})
        targeted = APGDT(threat, **{"steps": 100, "n_target_classes": EVAL_TARGETS[threat.name],
                                    **{k: v for k, v in overrides.items() if k not in ("loss", "restarts")}})
        return WorstOf([ce, targeted])
    if isinstance(threat, RotationTranslation):
        return RTRandom(threat, **{"k": 10, **overrides}) if train else RTGrid(threat, **overrides)
    if isinstance(threat, AffineCombination):
        if train:
            return AffineAttack(threat, **{"steps": 10, **overrides})
        return AffineAttack(threat, **{"steps": 100, "restarts": 5, **overrides})
    raise ValueError(f"no default attack for threat {threat!r}")

