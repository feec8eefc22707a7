"""Command-line flags generated from the fields of :class:`theory.Params`, shared by every CLI.

Each field ``name`` becomes ``--name`` with underscores turned into dashes (``eta_w`` -> ``--eta-w``,
``R0`` -> ``--R0``); defaults and help come from the dataclass, so flags are never typed twice.
Invalid values end the program through ``parser.error``: one line naming the parameter, exit status 2.

Beside it: :mod:`simulate.core.command` (how every command ends: exit statuses, Ctrl-C / SIGTERM, a failed write)
and :mod:`simulate.core.progress` (progress bars); their names are importable from here too.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import os
from dataclasses import MISSING, fields
from pathlib import Path

from theory.params import EPS_LAWS, FIELD_HELP, LOSSES, RANGES, ParameterError, Params

# the endings of every command and the progress bars live beside this module; imported here, where every command
# has always found them
from .command import (BROKEN_PIPE, INTERRUPTED, PROG, RUN_STACK, UNFINISHED, WRITE_FAILED,  # noqa: F401
                      Interrupted, StopRequest, command, deferred_stop, sigterm_as_interrupt)
from .progress import AlphaProgress, progress_bar  # noqa: F401

__all__ = ["ArgumentParser", "did_you_mean", "explain", "progress_bar", "AlphaProgress",
           "add_param_arguments", "params_from_args", "flag_name", "real", "number", "range_type",
           "TABLE_ALPHAS", "UNFINISHED", "one_line_errors", "as_flag_message", "add_output_arguments",
           "table_indices", "params_line", "PLOT_SUFFIXES", "check_outputs", "claim_output",
           "write_outputs", "command", "Interrupted", "INTERRUPTED", "WRITE_FAILED", "BROKEN_PIPE", "deferred_stop",
           "StopRequest"]

_CHOICES = {"eps_law": EPS_LAWS, "loss": LOSSES}


class ArgumentParser(argparse.ArgumentParser):
    """The parser of every command: one-line errors, whole flag names only, a hint for near misses.

    * an error is one line, ``prog: error: message``, exit status 2, no usage dump; a message that does not
      say what is allowed (``(allowed: ...)``) or suggest a flag ends with ``(see --help)``;
    * ``allow_abbrev=False``: ``--n`` is not silently taken for ``--non-robust-only``;
    * an unknown flag gets "did you mean ...?" from the parser's own flags (and those of its subcommands),
      case-insensitively first (``--alpha-f`` -> ``--alpha-F``, ``--k`` -> ``--K``), then by similarity;
    * argparse's "invalid choice: 'x' (choose from 'a', 'b')" reads "(allowed: a, b)", with a hint when the
      value is a near miss of a choice.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        if PROG.get() is None:  # the first (top-level) parser of a run names it in :func:`command`'s lines
            PROG.set(self.prog)

    def _all_option_strings(self) -> list[str]:
        """Every flag of this parser and of its subcommands' parsers (a subcommand's unknown flags are
        reported by the parser at the top)."""
        out: list[str] = []
        todo, seen = [self], set()
        while todo:
            parser = todo.pop()
            if id(parser) in seen:
                continue
            seen.add(id(parser))
            for action in parser._actions:
                out.extend(s for s in action.option_strings if s.startswith("--"))
                if isinstance(action, argparse._SubParsersAction):
                    todo.extend(action.choices.values())
        return list(dict.fromkeys(out))

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {explain(message, self._all_option_strings())}\n")


def did_you_mean(word: str, candidates) -> list[str]:
    """Close matches of ``word`` among ``candidates``, at most three: those equal to it but for case and
    those it abbreviates; failing both, the most similar (difflib)."""
    import difflib

    candidates = list(dict.fromkeys(candidates))
    same_case = [c for c in candidates if c.lower() == word.lower()]
    lower = {c.lower(): c for c in candidates}
    starts = [c for c in candidates if c.lower().startswith(word.lower())] if len(word) > 2 else []
    close = [lower[m] for m in difflib.get_close_matches(word.lower(), list(lower), n=3, cutoff=0.7)]
    return list(dict.fromkeys(same_case + starts or close))[:3]


_RANGE = re.compile(r"(?P<name>\S+) must lie in (?P<allowed>.+), got (?P<value>[^,]+)$")
_ONE_OF = re.compile(r"(?P<name>\S+) must be one of (?P<choices>.+), got (?P<value>\S+)$")
_CHOICE = re.compile(r"invalid choice: (?P<value>'[^']*'|\S+) \(choose from (?P<choices>.*)\)$")


def explain(message: str, flags) -> str:
    """The one-line error of a parser: argparse's message with the allowed values or a near-miss hint."""
    m = _CHOICE.search(message)
    if m:
        choices = [c.strip().strip("'") for c in m.group("choices").split(", ")]
        value = m.group("value").strip("'")
        hint = did_you_mean(value, choices)
        message = (message[:m.start()] + f"invalid choice {value!r} (allowed: {', '.join(choices)}"
                   + (f"; did you mean {' or '.join(hint)}?)" if hint else ")"))
    elif _RANGE.search(message):  # the library's "x must lie in [lo, hi] (why), got v"
        m = _RANGE.search(message)
        allowed = m.group("allowed")
        why = re.fullmatch(r"(?P<interval>.*?[\]\)]) \((?P<why>.*)\)", allowed)
        if why:
            allowed = f"{why.group('interval')}; {why.group('why')}"
        message = message[:m.start()] + f"{m.group('name')} = {m.group('value')} is out of range (allowed: {allowed})"
    elif _ONE_OF.search(message):  # the library's "x must be one of a, b, got 'c'"
        m = _ONE_OF.search(message)
        choices = m.group("choices").split(", ")
        hint = did_you_mean(m.group("value").strip("'"), choices)
        message = (message[:m.start()] + f"{m.group('name')} {m.group('value')} is not allowed (allowed: "
                   f"{m.group('choices')}" + (f"; did you mean {' or '.join(hint)}?)" if hint else ")"))
    elif message.startswith("unrecognized arguments: "):
        hints = []
        for token in message[len("unrecognized arguments: "):].split():
            name = token.split("=", 1)[0]
            if name.startswith("-") and name not in flags:
                close = did_you_mean(name if name.startswith("--") else "-" + name, flags)
                if close:
                    hints.append(f"{name}: did you mean {' or '.join(close)}?")
        if hints:
            message = f"{message} ({'; '.join(hints)})"
    if "(allowed" not in message and "did you mean" not in message:
        message += " (see --help)"
    return message


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


def add_param_arguments(parser: argparse.ArgumentParser, exclude: tuple[str, ...] = (), params_cls: type = Params,
                        *, helps: dict | None = None, ranges: dict | None = None, types: dict | None = None,
                        choices: dict | None = None, title: str | None = None, group: bool = True,
                        checked: bool = False) -> None:
    """Add one flag per field of the parameter dataclass ``params_cls`` (default :class:`theory.Params`): the one
    flag generator of every command.

    Help, valid interval, choices and the default's text come from the field's metadata (``help``, ``range`` =
    (lo, hi, ends, reason), ``choices``, ``shown``) when it has them, else from ``helps`` / ``ranges`` /
    ``choices`` ({field: text} / {field: (lo, hi, ends, reason)} / {field: allowed values}), else (for
    :class:`theory.Params`) from theory.params' FIELD_HELP, RANGES and choices.  ``types``: {field: (argparse
    type, metavar)} for fields that are not real numbers (arrays, lists).  ``group``: the flags in a group named
    after the dataclass (else on the parser itself).

    ``checked``: a field with a range is checked when it is parsed (an argparse type from :func:`number`: an
    integer for a field whose metadata ``kind`` is int, its interval and reason; exit 2 with one line naming the
    flag), for a dataclass whose own errors do not name the flag; the help then ends with the type's
    ``(allowed: ...)`` (:func:`state_ranges`-style) instead of ``valid ...``.  Otherwise the value is checked when
    the dataclass is built (:func:`params_from_args`)."""
    helps = {**(FIELD_HELP if params_cls is Params else {}), **(helps or {})}
    ranges = {**(RANGES if params_cls is Params else {}), **(ranges or {})}
    choices = {**(_CHOICES if params_cls is Params else {}), **(choices or {})}
    types = types or {}
    if title is None:
        title = "theory.Params" if params_cls is Params else f"{params_cls.__module__}.{params_cls.__name__}"
    target = parser.add_argument_group(f"model and training parameters ({title})") if group else parser
    for f in fields(params_cls):
        if f.name in exclude:
            continue
        default = (f.default if f.default is not MISSING else
                   f.default_factory() if f.default_factory is not MISSING else None)
        valid, kind = "", None
        rng = f.metadata.get("range", ranges.get(f.name))
        if rng is not None:
            lo, hi, ends, why = rng
            if checked:
                kind = range_type(rng, f.metadata.get("kind", float))
            else:
                valid = f"; valid {ends[0]}{lo:g}, {hi:g}{ends[1]}"
        shown = f.metadata.get("shown", default)
        help_text = f"{f.metadata.get('help', helps.get(f.name, f.name))} [default: {shown}{valid}]"
        allowed = f.metadata.get("choices", choices.get(f.name))
        if f.type in ("bool", bool):
            target.add_argument(flag_name(f.name), dest=f.name, action="store_true", help=help_text)
        elif allowed is not None:
            target.add_argument(flag_name(f.name), dest=f.name, choices=allowed, default=default, help=help_text)
        elif kind is not None:
            help_text += f" ({kind.allowed})".replace("%", "%%")
            target.add_argument(flag_name(f.name), dest=f.name, type=kind, default=default,
                                metavar="N" if f.metadata.get("kind") is int else "X", help=help_text)
        else:
            kind, metavar = types.get(f.name, (real, "X"))
            target.add_argument(flag_name(f.name), dest=f.name, type=kind, default=default, metavar=metavar,
                                help=help_text)


def params_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace, params_cls: type = Params,
                     **overrides):
    """Build the validated ``params_cls`` (default Params) from parsed flags; on invalid input exit 2 with a
    one-line message led by the flag."""
    values = {f.name: getattr(args, f.name) for f in fields(params_cls) if hasattr(args, f.name)}
    values.update(overrides)
    try:
        return params_cls(**values)
    except ParameterError as err:
        parser.error(as_flag_message(err, tuple(f.name for f in fields(params_cls))))
        raise  # unreachable: parser.error exits


# ---------------------------------------------------------------------------------------------------
# Pieces every simulate command shares: one-line errors from the library's exceptions, output flags,
# the printed table's rows and the parameter line.
# ---------------------------------------------------------------------------------------------------
#: alphas printed in the tables of the commands (every alpha of the grid goes to --out)
TABLE_ALPHAS = (0, 1, 2, 5, 10, 20, 50, 100, 150, 200, 500, 1000)


def as_flag_message(err: BaseException, names: tuple[str, ...] = ()) -> str:
    """The message of a ParameterError/OutputError led by the flag it names (``eta_w ...`` -> ``--eta-w: ...``);
    ``names``: further field names that are flags (those of another parameter dataclass)."""
    msg = str(err)
    first = msg.split(" ", 1)[0]
    if first in Params.field_names() or first in RUN_NAMES or first in names:
        return f"{flag_name(first)}: {msg}"
    return msg


#: names of run settings whose messages are led by their flag (``N`` -> ``--N``)
RUN_NAMES = frozenset({"N", "replicas", "seed", "engine", "eps_test", "alpha_max", "alpha_step", "threads",
                       "checkpoint", "checkpoint_every", "time_limit", "rtol", "atol", "method", "familywise",
                       # simulate.tradeoff
                       "d", "a", "p0", "eps_inf", "eps_1", "eps_2", "n_theta", "n_psi", "n_tau", "t", "alpha",
                       "eps_inf_hat", "eps_1_hat", "clf"})


@contextlib.contextmanager
def one_line_errors(parser: argparse.ArgumentParser):
    """Turn ParameterError / OutputError raised inside into ``prog: error: --flag: message``, exit 2."""
    from .provenance import OutputError

    try:
        yield
    except (ParameterError, OutputError) as err:
        if type(err).__name__ == "WriteError":  # a failed write after the work: ended by :func:`command`
            raise
        parser.error(as_flag_message(err))


def add_output_arguments(group, out_help: str, plot: bool = False) -> None:
    """--out [--plot] --overwrite --quiet, with the same meaning in every command."""
    group.add_argument("--out", type=Path, default=None, metavar="PATH", help=out_help)
    if plot:
        group.add_argument("--plot", type=Path, default=None, metavar="PATH",
                           help=f"write a figure; format from the suffix ({', '.join(PLOT_SUFFIXES)}; needs matplotlib)")
    group.add_argument("--overwrite", action="store_true",
                       help="replace an existing --out" + ("/--plot file" if plot else " file"))
    group.add_argument("--quiet", action="store_true", help="no progress bar; print nothing but errors")


PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def table_indices(alpha, atol: float) -> list[int]:
    """Indices of the grid points a command prints: the TABLE_ALPHAS up to the end, and the end itself."""
    end = float(alpha[-1])
    wanted = [a for a in TABLE_ALPHAS if a <= end] + [end]
    out, seen = [], set()
    for i, a in enumerate(alpha):
        if a not in seen and any(abs(a - w) < atol for w in wanted):
            seen.add(a)
            out.append(i)
    return out


def params_line(p: Params) -> str:
    """Every field of the parameters on one line, as the commands print them."""
    return (f"rho={p.rho:g} prior={p.prior:g} v1={p.v1:g} v2={p.v2:g} eta_w={p.eta_w:g} eta_b={p.eta_b:g} "
            f"eps={p.eps:g} eps_law={p.eps_law} non_robust_only={p.non_robust_only} loss={p.loss} "
            f"erf_scale={p.erf_scale:g} R0={p.R0:g} b0={p.b0:g}")


def check_outputs(args: argparse.Namespace, stack: contextlib.ExitStack, out_suffixes=(".csv", ".json")) -> None:
    """Check --out and --plot before work starts and hold their locks until ``stack`` closes."""
    from . import provenance as _prov

    if args.out is not None:
        _prov.check_output(args.out, flag="--out", suffixes=out_suffixes, overwrite=args.overwrite)
        if args.out.suffix.lower() == ".csv":
            _prov.check_output(_prov.sidecar_path(args.out), flag="--out (its sidecar)", overwrite=True)
        stack.enter_context(_prov.output_lock(args.out, flag="--out"))
    if getattr(args, "plot", None) is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise _prov.OutputError("--plot needs matplotlib: pip install -e '.[figures]'") from None
        _prov.check_output(args.plot, flag="--plot", suffixes=PLOT_SUFFIXES, overwrite=args.overwrite)
        if args.out is not None and args.plot.resolve() == args.out.resolve():
            raise _prov.OutputError("--plot and --out name the same file")
        stack.enter_context(_prov.output_lock(args.plot, flag="--plot"))


# ------------------------------------------------------------------------------------------------------
# Conventions shared by every command (simulate and empirical): stop-and-resume status, bounded numbers,
# output paths checked before any work starts.



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


def range_type(rng: tuple, kind: type = float):
    """The argparse type (:func:`number`) of a range in the one format of the project, (lo, hi, open ends,
    reason), e.g. an entry of theory.params.RANGES or a field's ``range`` metadata."""
    lo, hi, ends, why = rng
    return number(kind, lo, hi, lo_open=ends[0] == "(", hi_open=ends[1] == ")", why=why)


def claim_output(parser: argparse.ArgumentParser, flag: str, path, *, folder: bool = False, store: bool = False,
                 overwrite: bool = True, stack: contextlib.ExitStack | None = None) -> None:
    """Claim the output ``path`` of a command for this run: end with a one-line error (``parser.error``) unless
    it can be written, a file (or, with ``folder``, a folder that is created if missing) whose nearest existing
    ancestor is a writable folder, then hold its lock.  (:func:`simulate.core.provenance.check_output` is the
    library check of a path, which raises OutputError.)

    ``overwrite`` False refuses an existing file; ``store``: the output is a folder written as one unit (a
    zarr store), checked and locked like a file.  The lock ``.NAME.lock`` beside ``path`` (for a ``folder``,
    ``.result.json.lock`` inside it) is taken and held until ``stack`` closes, by default until the command
    decorated with :func:`command` ends: a second run on the same output is refused
    (:func:`simulate.provenance.output_lock`)."""
    from .provenance import OutputError, output_lock

    path = Path(path)
    stack = stack if stack is not None else RUN_STACK.get()
    if not overwrite and path.exists():
        parser.error(f"{flag}: {str(path)!r} exists; pass --overwrite to replace it")
    if str(path) in ("", "."):
        if not folder:
            parser.error(f"{flag}: empty path")
    if path.exists():
        if folder and not path.is_dir():
            parser.error(f"{flag}: {str(path)!r} exists and is not a folder")
        if not folder and not store and path.is_dir():
            parser.error(f"{flag}: {str(path)!r} is a folder, expected a file name")
    parent = path if folder and path.exists() else path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        parser.error(f"{flag}: {str(path)!r} lies under {str(parent)!r}, which is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        parser.error(f"{flag}: folder {str(parent)!r} is not writable")
    if stack is not None:
        try:
            if folder:
                path.mkdir(parents=True, exist_ok=True)
                stack.enter_context(output_lock(path / "result.json", flag=flag))
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                stack.enter_context(output_lock(path, flag=flag))
        except OSError as err:  # OutputError is a ValueError, not an OSError
            parser.error(f"{flag}: cannot create {str(path)!r}: {err.strerror or err}")
        except OutputError as err:
            parser.error(str(err))


def write_outputs(args: argparse.Namespace, write, plot=None) -> None:
    """--out through ``write(path, run_args)`` and --plot through ``plot(path)``, each reported unless --quiet;
    ``run_args`` are the parsed flags, paths as strings (for the provenance)."""
    run_args = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    if args.out is not None:
        write(args.out, run_args)
        if not args.quiet:
            print(f"wrote {args.out}")
    if plot is not None and getattr(args, "plot", None) is not None:
        plot(args.plot)
        if not args.quiet:
            print(f"wrote {args.plot}")
