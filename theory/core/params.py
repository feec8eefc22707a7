"""What every family's parameters share: the error type, range checks, the stable key, and the frozen-dataclass
conveniences (``replace``, ``as_dict``, ``key``, ``field_names``).

Each family's parameters are a frozen, keyword-only dataclass that validates itself and inherits
:class:`FrozenParams`; its fields may carry ``metadata`` (``help``, ``range`` = (lo, hi, ends, reason),
``choices``, ``kind``, ``shown``) from which :func:`simulate.core.cli.add_param_arguments` builds the command-line
flags; :func:`ranged_field` and :func:`choice_field` write that metadata.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any, ClassVar

__all__ = ["ParameterError", "stable_key", "check_range", "check_finite", "FrozenParams", "ranged_field",
           "choice_field"]


def stable_key(obj: Any, digits: int = 16) -> str:
    """The first ``digits`` hex digits of the SHA-256 of ``obj`` as canonical JSON (sorted keys; values JSON
    cannot hold written by ``repr``). The one key of the project: parameters, checkpoints, figure caches."""
    blob = json.dumps(obj, sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()[:digits]


class ParameterError(ValueError):
    """A parameter outside its allowed range. The message names the parameter and the range."""


def check_range(name: str, x: Any, lo: float, hi: float, ends: str = "[]", why: str = "") -> float:
    """``x`` as a float if it lies in the interval ``lo, hi`` (``ends``: which ends are open, "()" "(]" "[)"
    "[]"), else ParameterError naming ``name``, the interval and the reason ``why``. NaN is never in range."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a real number, got {x!r}") from None
    if isinstance(x, bool) or not ((lo < v if ends[0] == "(" else lo <= v) and (v < hi if ends[1] == ")" else v <= hi)):
        reason = f" ({why})" if why else ""
        raise ParameterError(f"{name} must lie in {ends[0]}{lo:g}, {hi:g}{ends[1]}{reason}, got {x!r}")
    return v


def check_finite(name: str, value: Any) -> float:
    """``value`` as a finite float, or ParameterError naming ``name``."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(x):
        raise ParameterError(f"{name} must be finite, got {value!r}")
    return x


def ranged_field(default: Any, lo: float, hi: float, ends: str, why: str, help: str, *, kind: type = float,
                 shown: Any = None):
    """A numeric dataclass field whose metadata carries its valid interval in the one range format of the project,
    ``range`` = (lo, hi, which ends are open, the reason for the bounds), its ``kind`` (int or float), the flag's
    ``help`` and, when the default needs words (None: a preset), ``shown``."""
    meta: dict[str, Any] = {"range": (lo, hi, ends, why), "kind": kind, "help": help}
    if shown is not None:
        meta["shown"] = shown
    return dataclasses.field(default=default, metadata=meta)


def choice_field(default: Any, choices: tuple, help: str):
    """A dataclass field that takes one of ``choices``; its metadata carries them and the flag's ``help``."""
    return dataclasses.field(default=default, metadata={"choices": choices, "help": help})


class FrozenParams:
    """Conveniences of a frozen parameter dataclass: a validated copy, the fields as a dict, a stable key.

    ``key_family``: None keys the fields alone (the linear model's key, as since before the families); a name
    prefixes the key so that two families with equal fields never share a cache entry."""

    key_family: ClassVar[str | None] = None

    def replace(self, **changes: Any):
        """A validated copy with some fields changed."""
        unknown = set(changes) - set(self.field_names())
        if unknown:
            raise ParameterError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """Stable 16-hex-digit key of every field (same parameters, same key)."""
        d = self.as_dict()
        return stable_key(d if self.key_family is None else {"family": self.key_family, **d})

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))
