"""The configuration of a training run (:class:`TrainConfig`), its presets per data set, and the command-line
flags generated from its fields (:func:`add_config_arguments`, :func:`config_from_args`).

Every field is validated by :class:`TrainConfig` itself (a :class:`ConfigError` names the field); a field of
``None`` takes the data set's preset (``PRESETS``).  Each field's metadata holds its help and, for a number, its
range (lo, hi, open ends, reason); the ranges shared with the other commands come from
:data:`empirical.cli.RANGES`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

from simulate.core.cli import add_param_arguments
from theory.core.params import ranged_field

from .cli import INTEGER_FLAGS, RANGES, eps_type

__all__ = ["TrainConfig", "ConfigError", "PRESETS", "OPTIMIZERS", "SCHEDULES", "AMP", "AUGMENT", "EVAL_FIELDS",
           "EVAL_STRENGTHS", "add_config_arguments", "config_from_args"]

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


def _shared(name: str, help: str, *, default=None, lo=None, why: str = "", shown=None):
    """A numeric field whose range is the shared flag's (:data:`empirical.cli.RANGES`), ``lo`` lowered if given."""
    lo_, hi, ends, reason = RANGES[name]
    return _number(default, lo_ if lo is None else lo, hi, ends, why + reason, help,
                   kind=int if name in INTEGER_FLAGS else float, shown=shown)


_number = ranged_field  # a numeric field with its range, kind, help and default's text (theory.core.params)


def _other(default=None, *, help: str, shown=None, factory=None):
    """A field without a numeric range (a name, a list of threats, the budgets): its help and default's text."""
    meta = {"help": help, **({} if shown is None else {"shown": shown})}
    return field(default_factory=factory, metadata=meta) if factory is not None else field(default=default,
                                                                                          metadata=meta)


_PRESET = "the dataset's preset"


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that decides a training run (``None``: the dataset's preset, see ``PRESETS``).

    Every field's metadata carries the help of its flag and, for a number, its valid interval with the reason
    (``range`` = (lo, hi, open ends, reason)); the flags are generated from them by
    :func:`simulate.core.cli.add_param_arguments` (:func:`add_config_arguments`)."""

    dataset: str = _other("mnist", help="data set: mnist, fashion_mnist, cifar10 (lossless subset), cifar10_jpeg "
                                        "(full, JPEG)")
    scheme: str = _other("natural", help="training scheme: natural, adv, avg, max, msd, sat, mng_ac")
    threats: tuple[str, ...] = _other((), help="comma-separated threats of the scheme: linf,l1,l2,rt (adv: exactly "
                                               "one)", shown="none")
    eps: dict[str, Any] = _other(factory=dict, help="budgets, e.g. linf=0.3,l1=10,l2=2,rt=30/3; a threat left out "
                                                    "keeps the dataset's",
                                 shown="MNIST linf=0.3,l1=10,l2=2,rt=30/3; CIFAR-10 linf=8/255,l1=12,l2=0.5,rt=30/3")
    model: str | None = _other(help="network: mnist_cnn, mnist_cnn_small, preact_resnet18", shown=_PRESET)
    optimizer: str | None = _other(help="sgd (momentum, weight decay) or adam", shown=_PRESET)
    lr: float | None = _number(None, 0.0, 10.0, "(]", "a step > 0; peak rates above 10 diverge for every model "
                                                      "and optimiser here", "peak learning rate", shown=_PRESET)
    momentum: float = _number(0.9, 0.0, 1.0, "[)", "SGD momentum >= 1 lets the velocity grow without bound",
                              "SGD momentum")
    weight_decay: float | None = _number(None, 0.0, 1.0, "[]", "a decay above 1 per unit learning rate wipes out "
                                                               "the weights", "weight decay", shown=_PRESET)
    schedule: str | None = _other(help="learning-rate schedule per step: cyclic, piecewise, constant", shown=_PRESET)
    batch_size: int | None = _shared("batch_size", "global batch size (split evenly over the processes)",
                                     shown=_PRESET)
    epochs: int | None = _number(None, 1, 10000, "[]", "at least one pass; 10,000 epochs would not finish on any "
                                                       "machine", "number of epochs", kind=int, shown=_PRESET)
    train_limit: int | None = _shared("train_limit", "train on the first N training images only", shown="all")
    attack_steps: int | None = _number(None, 1, 10000, "[]", "the cost grows linearly in the steps; 10,000 per "
                                                             "batch would not finish", "steps of the training attacks",
                                       kind=int, shown="the attack module's training default (10)")
    seed: int = _shared("seed", "random seed; same seed, same run", default=0)
    amp: str = _other("auto", help="mixed precision: auto (bfloat16 autocast on CUDA only), on (needs CUDA), off")
    test_limit: int = _shared("test_limit", "evaluate on the first N test images at the end (0: no evaluation)",
                              default=0, lo=0, why="0: no evaluation; ")
    eval_threats: tuple[str, ...] | None = _other(help="threats of the final evaluation",
                                                  shown="the training threats attacked by gradients, or linf,l1,l2")
    eval_batch_size: int = _shared("batch_size", "batch size of the final evaluation", default=200)
    eval_strength: str = _other("apgd", help="attacks of the final evaluation: apgd (APGD-CE + APGD-T, quick) or "
                                             "eval (the full AutoAttack standard suite: + FAB-T and Square; what "
                                             "empirical.evaluate reports)")
    augment: str = _other("auto", help="data augmentation: auto (random crop with 4-pixel padding + horizontal "
                                       "flip on CIFAR-10, none on MNIST), crop_flip, none")
    eps_warmup: float = _number(0.0, 0.0, 1.0, "[)", "a fraction of the run: the full budgets must be reached",
                                "fraction of the run over which the training budgets grow linearly from 0 to their "
                                "value (0: none); a common remedy when adversarial training stalls at the uniform "
                                "prediction")

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
        for f in fields(self):
            if "range" not in f.metadata:
                continue
            name, v, kind = f.name, getattr(self, f.name), f.metadata["kind"]
            (lo_, hi_, ends, _why) = f.metadata["range"]
            if v is None and name in ("train_limit", "attack_steps"):
                continue
            lo_open, hi_open = ends[0] == "(", ends[1] == ")"
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (kind is float or isinstance(v, int))
            ok = ok and math.isfinite(v) and (v > lo_ if lo_open else v >= lo_) and (v < hi_ if hi_open else v <= hi_)
            need(name, ok, f"must be {'an integer' if kind is int else 'a number'} in {ends[0]}{lo_}, {hi_}{ends[1]}, "
                           f"got {v!r}")

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


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per field of :class:`TrainConfig` (``--batch-size`` ...), generated from the fields by the one
    flag generator (:func:`simulate.core.cli.add_param_arguments`); numbers are checked as they are parsed."""
    from .data import DATASETS
    from .models import MODELS
    from .schemes import SCHEMES

    choices = {"dataset": [d for d in DATASETS if d in PRESETS], "scheme": list(SCHEMES), "model": MODELS,
               "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "amp": AMP, "augment": AUGMENT,
               "eval_strength": EVAL_STRENGTHS}
    types = {"threats": (_threat_list, "LIST"), "eval_threats": (_threat_list, "LIST"), "eps": (eps_type, "BUDGETS")}
    add_param_arguments(parser, params_cls=TrainConfig, choices=choices, types=types, group=False, checked=True)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
