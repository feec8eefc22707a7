"""Command-line flags generated from the fields of :class:`theory.Params`, shared by every CLI.

Each field ``name`` becomes ``--name`` with underscores turned into dashes (``eta_w`` -> ``--eta-w``,
``R0`` -> ``--R0``); defaults and help come from the dataclass, so flags are never typed twice.
Invalid values end the program through ``parser.error``: one line naming the parameter, exit status 2.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import MISSING, fields

from theory.params import EPS_LAWS, FIELD_HELP, LOSSES, ParameterError, Params

__all__ = ["ArgumentParser", "add_param_arguments", "params_from_args", "flag_name", "real"]

_CHOICES = {"eps_law": EPS_LAWS, "loss": LOSSES}


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``prog: error: message``, exit status 2, no usage dump."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def real(text: str) -> float:
    """A real number; also accepts 'sqrt2' (for --erf-scale)."""
    if text.strip().lower() in ("sqrt2", "sqrt(2)"):
        return math.sqrt(2.0)
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid real number: {text!r}") from None


def add_param_arguments(parser: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
    """Add one flag per field of Params (the model and training parameters)."""
    group = parser.add_argument_group("model and training parameters (theory.Params)")
    for f in fields(Params):
        if f.name in exclude:
            continue
        default = f.default if f.default is not MISSING else None
        help_text = f"{FIELD_HELP.get(f.name, f.name)} [default: {default}]"
        if f.type in ("bool", bool):
            group.add_argument(flag_name(f.name), dest=f.name, action="store_true", help=help_text)
        elif f.name in _CHOICES:
            group.add_argument(flag_name(f.name), dest=f.name, choices=_CHOICES[f.name], default=default,
                               help=help_text)
        else:
            group.add_argument(flag_name(f.name), dest=f.name, type=real, default=default, metavar="X",
                               help=help_text)


def params_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace, **overrides) -> Params:
    """Build the validated Params from parsed flags; on invalid input exit 2 with a one-line message."""
    values = {f.name: getattr(args, f.name) for f in fields(Params) if hasattr(args, f.name)}
    values.update(overrides)
    try:
        return Params(**values)
    except ParameterError as err:
        parser.error(f"{flag_name(str(err).split()[0])}: {err}")
        raise  # unreachable: parser.error exits
