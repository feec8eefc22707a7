"""The grid of a parameter sweep: ``--grid`` specifications parsed and checked against an engine's parameters.

``name=start:stop:num`` (numpy.linspace), ``name=v1,v2,...`` or ``name=v``; ``name`` is a field of the engine's
parameter dataclass or one of its extra sweepable fields (``N`` for ``mc``).  A :class:`Grid` holds the axes in
order and the fixed values of every other field; its points are numbered in C order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from theory.linear.params import EPS_LAWS, LOSSES, ParameterError, Params

from .engines import SweepEngine

__all__ = ["Grid", "parse_axis", "make_grid", "BOOL_WORDS"]

#: the words a boolean field or option accepts
BOOL_WORDS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
_INT_FIELDS = ("N", "d")  # engines' extra sweepable fields that are integers


def _choices(name: str, params_cls: type = Params):
    """The allowed strings of a string field: its metadata's ``choices``, or those of theory.Params."""
    for f in fields(params_cls):
        if f.name == name and "choices" in f.metadata:
            return tuple(f.metadata["choices"])
    return {"eps_law": EPS_LAWS, "loss": LOSSES}.get(name)


def _field_kind(name: str, params_cls: type = Params) -> str:
    if _choices(name, params_cls) is not None:
        return "str"
    if name == "non_robust_only":
        return "bool"
    if name in _INT_FIELDS:
        return "int"
    return "float"


def _value(name: str, text: str, params_cls: type = Params):
    kind = _field_kind(name, params_cls)
    t = text.strip()
    if kind == "str":
        allowed = _choices(name, params_cls)
        if t not in allowed:
            raise ParameterError(f"--grid {name}: {t!r} is not one of {', '.join(allowed)}")
        return t
    if kind == "bool":
        if t.lower() not in BOOL_WORDS:
            raise ParameterError(f"--grid {name}: {t!r} is not true or false")
        return BOOL_WORDS[t.lower()]
    try:
        x = float(t)
    except ValueError:
        raise ParameterError(f"--grid {name}: {t!r} is not a number") from None
    if not math.isfinite(x):
        raise ParameterError(f"--grid {name}: {t!r} is not finite")
    if kind == "int":
        if x != int(x):
            raise ParameterError(f"--grid {name}: {t!r} is not an integer")
        return int(x)
    return x


def parse_axis(spec: str, allowed: tuple[str, ...], params_cls: type = Params) -> tuple[str, tuple]:
    """'name=start:stop:num' | 'name=v1,v2,...' | 'name=v' -> (name, values)."""
    if "=" not in spec:
        raise ParameterError(f"--grid {spec!r}: expected name=start:stop:num or name=v1,v2,...")
    name, _, body = spec.partition("=")
    name = name.strip().replace("-", "_")
    if name not in allowed:
        raise ParameterError(f"--grid {spec!r}: unknown field {name!r}; choose from {', '.join(allowed)}")
    body = body.strip()
    if not body:
        raise ParameterError(f"--grid {name}: no values given")
    if ":" in body:
        if _field_kind(name, params_cls) in ("str", "bool"):
            raise ParameterError(f"--grid {name}: a range start:stop:num needs a numeric field")
        parts = body.split(":")
        if len(parts) != 3:
            raise ParameterError(f"--grid {name}: a range is start:stop:num, got {body!r}")
        start, stop = _value(name, parts[0], params_cls), _value(name, parts[1], params_cls)
        try:
            num = int(parts[2])
        except ValueError:
            raise ParameterError(f"--grid {name}: num in start:stop:num must be an integer >= 1, "
                                 f"got {parts[2]!r}") from None
        if num < 1:
            raise ParameterError(f"--grid {name}: num in start:stop:num must be an integer >= 1, got {num}")
        vals = np.linspace(start, stop, num)
        if _field_kind(name, params_cls) == "int":
            if not np.allclose(vals, np.rint(vals)):
                raise ParameterError(f"--grid {name}: the range {body} does not fall on integers")
            return name, tuple(int(v) for v in np.rint(vals))
        return name, tuple(float(v) for v in vals)
    vals = tuple(_value(name, t, params_cls) for t in body.split(","))
    if len(set(vals)) != len(vals):
        raise ParameterError(f"--grid {name}: repeated values in {body!r}")
    return name, vals


@dataclass(frozen=True)
class Grid:
    """A Cartesian grid: ``axes`` (name, values) in order, and the ``fixed`` values of all other fields.

    Points are numbered in C order (the last axis fastest); ``point(i)`` is the dict of every field.
    """

    axes: tuple[tuple[str, tuple], ...]
    fixed: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a[0] for a in self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a[1]) for a in self.axes)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.axes else 1

    def point(self, i: int) -> dict[str, Any]:
        idx = np.unravel_index(i, self.shape) if self.axes else ()
        pt = dict(self.fixed)
        for (name, vals), j in zip(self.axes, idx):
            pt[name] = vals[int(j)]
        return pt

    def as_dict(self) -> dict[str, Any]:
        return {"axes": [[n, list(v)] for n, v in self.axes], "fixed": self.fixed}


def make_grid(specs: list[str], base, engine: SweepEngine, extra_fixed: dict[str, Any] | None = None) -> Grid:
    """Parse the --grid specifications and check every axis value against the engine's parameter dataclass
    (``base`` is an instance of it: the values of the fields that are not swept)."""
    allowed = engine.params_cls.field_names() + tuple(engine.extra_fields)
    axes = []
    for spec in specs:
        name, vals = parse_axis(spec, allowed, engine.params_cls)
        if name in (a[0] for a in axes):
            raise ParameterError(f"--grid {name}: the field is given twice")
        axes.append((name, vals))
    fixed = {k: v for k, v in base.as_dict().items() if k not in dict(axes)}
    for k, v in (extra_fixed or {}).items():
        if k not in dict(axes):
            fixed[k] = v
    # every field is validated on its own, so checking each axis value at the base point checks the grid
    for name, vals in axes:
        for v in vals:
            pt = {**fixed, **{n: vs[0] for n, vs in axes}, name: v}
            try:
                engine.check_point(pt)
            except ParameterError as err:
                raise ParameterError(f"--grid {name}={v!r}: {err}") from None
    return Grid(tuple(axes), fixed)
