"""Attacks, one per file, in one registry: ``get_attack(name, threat, **hyper)`` and ``attack_for``.

Every attack is called as ``attack(model, x, y, generator=None) -> x_adv`` and is deterministic given
the generator. Shared hyperparameter names: ``eps``, ``alpha``, ``steps``, ``random_start``, ``restarts``,
``loss`` ('ce' | 'margin' | 'dlr').
"""

from __future__ import annotations

from ..threats import AffineCombination, L1Ball, L2Ball, LinfBall, RotationTranslation
from .affine import AffineAttack
from .apgd import APGD
from .base import Attack
from .pgd import PGD
from .rt_grid import RTGrid
from .rt_random import RTRandom
from .slide import SLIDE
from .worst_of import WorstOf

__all__ = ["ATTACKS", "get_attack", "attack_for", "register_attack", "Attack", "PGD", "SLIDE", "APGD",
           "RTGrid", "RTRandom", "AffineAttack", "WorstOf"]

ATTACKS: dict[str, type] = {
    "pgd": PGD, "slide": SLIDE, "apgd": APGD, "rt_grid": RTGrid, "rt_random": RTRandom, "affine": AffineAttack,
}


def register_attack(name: str, cls: type) -> None:
    """Add an attack class (built as ``cls(threat, **hyper)``) to the registry (e.g. MSD, in msd.py)."""
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
    rotation-translations, 10-step affine attack. ``eval`` (strongest): APGD-CE then APGD-margin, 100 steps
    each, on the points the first left robust (l_p); full grid (rt); affine attack with 100 steps and 5
    restarts. ``overrides`` go to each attack's constructor.
    """
    if strength not in ("train", "eval"):
        raise ValueError(f"strength must be 'train' or 'eval', got {strength!r}")
    train = strength == "train"
    if isinstance(threat, (LinfBall, L2Ball)):
        if train:
            return PGD(threat, **{"steps": 10, **overrides})
        return WorstOf([APGD(threat, **{"steps": 100, "loss": "ce", **overrides}),
                        APGD(threat, **{"steps": 100, "loss": "margin", **overrides})])
    if isinstance(threat, L1Ball):
        if train:
            return SLIDE(threat, **{"steps": 10, **overrides})
        return WorstOf([APGD(threat, **{"steps": 100, "loss": "ce", **overrides}),
                        APGD(threat, **{"steps": 100, "loss": "margin", **overrides})])
    if isinstance(threat, RotationTranslation):
        return RTRandom(threat, **{"k": 10, **overrides}) if train else RTGrid(threat, **overrides)
    if isinstance(threat, AffineCombination):
        if train:
            return AffineAttack(threat, **{"steps": 10, **overrides})
        return AffineAttack(threat, **{"steps": 100, "restarts": 5, **overrides})
    raise ValueError(f"no default attack for threat {threat!r}")


try:  # the MSD attack lives in msd.py (training engineer) and registers itself when present
    from . import msd  # noqa: F401
except ImportError:
    pass
