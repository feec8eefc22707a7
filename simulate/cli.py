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

__all__ = ["ArgumentParser", "add_param_arguments", "params_from_args", "flag_name", "real", "number",
           "check_output", "EXIT_UNFINISHED"]

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


# ------------------------------------------------------------------------------------------------------
# Conventions shared by every command (simulate and empirical): stop-and-resume status, bounded numbers,
# output paths checked before any work starts.

#: Exit status of a command that stopped early with its checkpoint written: "unfinished, run the same
#: command again to resume" (EX_TEMPFAIL of sysexits.h).
EXIT_UNFINISHED = 75


def _fmt(v) -> str:
    return str(v) if isinstance(v, int) else f"{v:g}"


def number(kind: type = float, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False, why: str = ""):
    """An argparse ``type`` for a finite int or float in [lo, hi] (open ends with ``lo_open``/``hi_open``).

    Rejects non-numbers, nan, +-inf and values out of range with one line that states the allowed range
    and, with ``why``, the reason for the bound; argparse prefixes the flag name.
    """
    if lo is None and hi is None:
        rng = "any finite value"
    else:
        left = "-inf" if lo is None else _fmt(lo)
        right = "inf" if hi is None else _fmt(hi)
        rng = ("(" if lo_open or lo is None else "[") + f"{left}, {right}" + (")" if hi_open or hi is None else "]")
    allowed = f"allowed: {'integer' if kind is int else 'number'} in {rng}" + (f"; {why}" if why else "")

    def convert(text: str):
        try:
            value = int(text) if kind is int else float(text)
        except (TypeError, ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'} "
                                             f"({allowed})") from None
        ok = math.isfinite(value) and not (
            lo is not None and (value < lo or (lo_open and value == lo))) and not (
            hi is not None and (value > hi or (hi_open and value == hi)))
        if not ok:
            raise argparse.ArgumentTypeError(f"{text} is out of range ({allowed})")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its messages
    convert.allowed = allowed  # type: ignore[attr-defined]  (for help texts)
    return convert


def check_output(parser: argparse.ArgumentParser, flag: str, path, *, folder: bool = False) -> None:
    """End with a one-line error unless ``path`` can be written: a file (or, with ``folder``, a folder
    that is created if missing) whose nearest existing ancestor is a writable folder."""
    import os
    from pathlib import Path

    path = Path(path)
    if str(path) in ("", "."):
        if not folder:
            parser.error(f"{flag}: empty path")
    if path.exists():
        if folder and not path.is_dir():
            parser.error(f"{flag}: {str(path)!r} exists and is not a folder")
        if not folder and path.is_dir():
            parser.error(f"{flag}: {str(path)!r} is a folder, expected a file name")
    parent = path if folder and path.exists() else path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        parser.error(f"{flag}: {str(path)!r} lies under {str(parent)!r}, which is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        parser.error(f"{flag}: folder {str(parent)!r} is not writable")
