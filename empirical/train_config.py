"""The configuration of a training run (:class:`TrainConfig`), its presets per data set, and the command-line
flags generated from its fields (:func:`add_config_arguments`, :func:`config_from_args`).

Every field is validated by :class:`TrainConfig` itself (a :class:`ConfigError` names the field); a field of
``None`` takes the data set's preset (``PRESETS``).  The numeric fields' ranges are ``FIELD_RANGES``, the
ranges shared with the other commands come from :data:`empirical.cli.RANGES`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

from simulate.core.cli import flag_name

from .cli import RANGES, eps_type, number

__all__ = ["TrainConfig", "ConfigError", "PRESETS", "OPTIMIZERS", "SCHEDULES", "AMP", "AUGMENT", "EVAL_FIELDS",
           "EVAL_STRENGTHS", "FIELD_RANGES", "FIELD_HELP", "add_config_arguments", "config_from_args"]

PRESETS: dict[str, dict[str, Any]] = {
    "mnist": dict(model="mnist_cnn", optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="cyclic",
                  batch_size=100, epochs=10),
    "fashion_mnist": dict(model="mnist_cnn", optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="cyclic",
                          batch_size=100, epochs=10),
    "cifar10": dict(model="preact_resnet18", optimizer="sgd", lr=0.1, weight_decay=5e-4, schedule="cyclic",
                    batch_size=128, epochs=30),
}
PRESETS["cifar10_jpeg"] = PRESETS["cifar10"]

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cyclic", "piecewise", "constant")
AMP = ("auto", "on", "off")
AUGMENT = ("auto", "crop_flip", "none")
#: Fields that only decide the final evaluation (a finished run may be evaluated again with others).
EVAL_FIELDS = ("test_limit", "eval_threats", "eval_batch_size", "eval_strength")
#: Strengths of the final evaluation (empirical.attacks.STRENGTHS): apgd (APGD-CE + APGD-T) or eval (the full
#: AutoAttack standard suite; empirical.evaluate and the tables use it).
EVAL_STRENGTHS = ("apgd", "eval")


class ConfigError(ValueError):
    """An invalid training configuration; ``field`` names the offending field."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name} {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that decides a training run (``None``: the dataset's preset, see ``PRESETS``)."""

    dataset: str = "mnist"
    scheme: str = "natural"
    threats: tuple[str, ...] = ()
    eps: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    optimizer: str | None = None
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    schedule: str | None = None
    batch_size: int | None = None
    epochs: int | None = None
    train_limit: int | None = None
    attack_steps: int | None = None
    seed: int = 0
    amp: str = "auto"
    test_limit: int = 0
    eval_threats: tuple[str, ...] | None = None
    eval_batch_size: int = 200
    eval_strength: str = "apgd"
    augment: str = "auto"
    eps_warmup: float = 0.0

    def __post_init__(self) -> None:
        from .data import DATASETS
        from .models import MODELS
        from .schemes import SCHEMES
        from .threats import THREAT_MODELS

        def need(name: str, ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(name, message)

        datasets = [d for d in DATASETS if d in PRESETS]
        need("dataset", self.dataset in datasets, f"must be one of {datasets}, got {self.dataset!r}")
        need("scheme", self.scheme in SCHEMES, f"must be one of {list(SCHEMES)}, got {self.scheme!r}")
        need("eval_strength", self.eval_strength in EVAL_STRENGTHS,
             f"must be one of {list(EVAL_STRENGTHS)}, got {self.eval_strength!r}")
        for name in ("threats", "eval_threats"):
            value = getattr(self, name)
            if value is None:
                continue
            value = tuple(value)
            object.__setattr__(self, name, value)
            bad = [t for t in value if t not in THREAT_MODELS]
            need(name, not bad, f"must be names from {list(THREAT_MODELS)}, got {bad}")
            need(name, len(set(value)) == len(value), f"has a repeated threat: {value}")
        lo, hi = SCHEMES[self.scheme].n_threats
        k = len(self.threats)
        want = f"exactly {lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
        need("threats", k >= lo and (hi is None or k <= hi), f"of scheme {self.scheme!r}: needs {want}, got {k}")
        object.__setattr__(self, "eps", dict(self.eps))
        unknown = [t for t in self.eps if t not in THREAT_MODELS]
        need("eps", not unknown, f"has unknown threats {unknown}")
        for key, value in PRESETS[self.dataset].items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        for name, allowed in (("model", MODELS), ("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                              ("augment", AUGMENT), ("amp", AMP)):
            need(name, getattr(self, name) in allowed, f"must be one of {list(allowed)}, got {getattr(self, name)!r}")
        for name, (kind, lo_, hi_, lo_open, hi_open, _why) in FIELD_RANGES.items():
            v = getattr(self, name)
            if v is None and name in ("train_limit", "attack_steps"):
                continue
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (kind is float or isinstance(v, int))
            ok = ok and math.isfinite(v) and (v > lo_ if lo_open else v >= lo_) and (v < hi_ if hi_open else v <= hi_)
            need(name, ok, f"must be {'an integer' if kind is int else 'a number'} in {'(' if lo_open else '['}"
                           f"{lo_}, {hi_}{')' if hi_open else ']'}, got {v!r}")

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    @property
    def threat_dataset(self) -> str:
        """The budget table of this run's data set (:func:`empirical.threats.budget_table`)."""
        from .threats import budget_table

        return budget_table(self.dataset)

    def threat_objects(self, names) -> list:
        """The threats ``names`` with this run's budgets (``eps``; absent: the dataset's)."""
        from .threats import make_threats

        return make_threats(names, self.threat_dataset, self.eps)

    def as_dict(self) -> dict[str, Any]:
        """The configuration as JSON data (tuples as lists), as stored in checkpoints and results."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def training_dict(self) -> dict[str, Any]:
        """:meth:`as_dict` without the evaluation fields: what a resumed or re-evaluated run must match."""
        return {k: v for k, v in self.as_dict().items() if k not in EVAL_FIELDS}


def _shared(name: str, lo=None) -> tuple:
    kind, lo_, hi, why = RANGES[name]
    return kind, lo_ if lo is None else lo, hi, False, False, why


#: Numeric fields: (kind, low, high, low bound open, high bound open, reason for the bounds).
FIELD_RANGES = {
    "lr": (float, 0.0, 10.0, True, False, "a step > 0; peak rates above 10 diverge for every model and optimiser "
                                          "here"),
    "momentum": (float, 0.0, 1.0, False, True, "SGD momentum >= 1 lets the velocity grow without bound"),
    "weight_decay": (float, 0.0, 1.0, False, False, "a decay above 1 per unit learning rate wipes out the weights"),
    "batch_size": _shared("batch_size"),
    "epochs": (int, 1, 10000, False, False, "at least one pass; 10,000 epochs would not finish on any machine"),
    "train_limit": _shared("train_limit"),
    "attack_steps": (int, 1, 10000, False, False, "the cost grows linearly in the steps; 10,000 per batch would "
                                                  "not finish"),
    "seed": _shared("seed"),
    "test_limit": _shared("test_limit", lo=0),
    "eval_batch_size": _shared("batch_size"),
    "eps_warmup": (float, 0.0, 1.0, False, True, "a fraction of the run: the full budgets must be reached"),
}

FIELD_HELP = {
    "dataset": "data set: mnist, fashion_mnist, cifar10 (lossless subset), cifar10_jpeg (full, JPEG)",
    "scheme": "training scheme: natural, adv, avg, max, msd, sat, mng_ac",
    "threats": "comma-separated threats of the scheme: linf,l1,l2,rt (adv: exactly one)",
    "eps": "budgets, e.g. linf=0.3,l1=10,l2=2,rt=30/3; a threat left out keeps the dataset's",
    "model": "network: mnist_cnn, mnist_cnn_small, preact_resnet18",
    "optimizer": "sgd (momentum, weight decay) or adam",
    "lr": "peak learning rate",
    "momentum": "SGD momentum",
    "weight_decay": "weight decay",
    "schedule": "learning-rate schedule per step: cyclic, piecewise, constant",
    "batch_size": "global batch size (split evenly over the processes)",
    "epochs": "number of epochs",
    "train_limit": "train on the first N training images only",
    "attack_steps": "steps of the training attacks",
    "seed": "random seed; same seed, same run",
    "amp": "mixed precision: auto (bfloat16 autocast on CUDA only), on (needs CUDA), off",
    "test_limit": "evaluate on the first N test images at the end (0: no evaluation)",
    "eval_threats": "threats of the final evaluation",
    "eval_batch_size": "batch size of the final evaluation",
    "eval_strength": "attacks of the final evaluation: apgd (APGD-CE + APGD-T, quick) or eval (the full AutoAttack "
                     "standard suite: + FAB-T and Square; what empirical.evaluate reports)",
    "augment": "data augmentation: auto (random crop with 4-pixel padding + horizontal flip on CIFAR-10, "
               "none on MNIST), crop_flip, none",
    "eps_warmup": "fraction of the run over which the training budgets grow linearly from 0 to their value "
                  "(0: none); a common remedy when adversarial training stalls at the uniform prediction",
}


#: What a default of None means, for the help text.
DEFAULT_TEXT = {
    "eps": "MNIST linf=0.3,l1=10,l2=2,rt=30/3; CIFAR-10 linf=8/255,l1=12,l2=0.5,rt=30/3",
    "train_limit": "all", "attack_steps": "the attack module's training default (10)",
    "eval_threats": "the training threats attacked by gradients, or linf,l1,l2", "threats": "none",
}


def _threat_list(text: str) -> tuple[str, ...]:
    from .threats import THREAT_MODELS

    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in names if t not in THREAT_MODELS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown threats {bad} (allowed: comma-separated {', '.join(THREAT_MODELS)})")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a threat is repeated in {text!r}")
    return names


_threat_list.__name__ = "threat list"


def _field_argument(f) -> dict[str, Any]:
    """The add_argument keywords of configuration field ``f``: type with its range, or choices."""
    from .data import DATASETS
    from .models import MODELS
    from .schemes import SCHEMES

    choices = {"dataset": [d for d in DATASETS if d in PRESETS], "scheme": list(SCHEMES), "model": MODELS,
               "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "amp": AMP, "augment": AUGMENT,
               "eval_strength": EVAL_STRENGTHS}
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    shown = DEFAULT_TEXT.get(f.name, "the dataset's preset" if f.name in PRESETS["mnist"] else default)
    kw: dict[str, Any] = {"dest": f.name, "default": default, "help": f"{FIELD_HELP[f.name]} [default: {shown}]"}
    if f.name in choices:
        kw["choices"] = choices[f.name]
    elif f.name in ("threats", "eval_threats"):
        kw.update(type=_threat_list, metavar="LIST")
    elif f.name == "eps":
        kw.update(type=eps_type, metavar="BUDGETS")
    else:
        kind, lo, hi, lo_open, hi_open, why = FIELD_RANGES[f.name]
        why = ("0: no evaluation; " if f.name == "test_limit" else "") + why
        kw.update(type=number(kind, lo, hi, lo_open=lo_open, hi_open=hi_open, why=why),
                  metavar="N" if kind is int else "X")
    return kw


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per field of :class:`TrainConfig` (``--batch-size`` ...), generated from the fields."""
    for f in fields(TrainConfig):
        parser.add_argument(flag_name(f.name), **_field_argument(f))


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
