"""The conventions of every ``python -m empirical.*`` command, in one place (README: "Conventions").

* **Budgets**: one syntax, ``--eps linf=0.3,l1=10,l2=2,rt=30/3`` (``rt=<max angle in degrees>/<max shift
  in pixels>``), parsed by :func:`parse_eps`; a name left out keeps the dataset's literature budget
  (:data:`empirical.threats.DEFAULT_BUDGETS`).  A command that takes several budgets per threat
  (``budget_curves``) repeats the name: ``--eps linf=0.1,linf=0.2,l1=5``.
* **Flags with one meaning**: ``--dataset``, ``--data-dir`` (default ``$ADVTRAIN_DATA_DIR``, then
  ``../shared/data``), ``--device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``), ``--threads`` (torch CPU
  threads), ``--seed``, ``--quiet`` (no progress bar or progress lines), ``--out`` (what the command
  writes: a file, or for ``train`` the run's folder), ``--test-limit`` (evaluate on the first N test
  images), ``--train-limit`` (train on the first N training images), ``--batch-size``, ``--time-limit``.
* **Errors**: one line ``prog: error: argument --flag: message (allowed: ...)``, exit status 2, no usage
  dump (:class:`simulate.cli.ArgumentParser`); every number is checked against its stated range
  (:data:`RANGES`, each bound with its reason) and every output path is checked before any work starts.
* **Stop and resume**: a command stopped by ``--time-limit`` writes its checkpoint and exits with
  :data:`simulate.cli.UNFINISHED` (75); running the same command again resumes it.
"""

from __future__ import annotations

import argparse
import re

from simulate.cli import UNFINISHED, ArgumentParser, claim_output, number, range_type

__all__ = ["ArgumentParser", "UNFINISHED", "claim_output", "number", "RANGES", "INTEGER_FLAGS", "parse_eps",
           "eps_type", "device_type", "path_type", "add_common", "state_ranges", "COMMANDS", "BUDGET_RANGES", "ROW_OF", "row_name"]

#: The name of a training scheme in tables, figures and the README (the rows of ``empirical.reproduce``), from
#: the name of its run: the ``--scheme`` of ``empirical.train``, with the threat for the single-threat ``adv``
#: (``--scheme adv --threats linf`` is Adv_inf).  The one mapping between the two vocabularies.
ROW_OF = {"natural": "Nat", "adv_linf": "Adv_inf", "adv_l1": "Adv_1", "adv_l2": "Adv_2", "adv_rt": "Adv_RT",
          "avg": "avg", "max": "max", "msd": "MSD", "sat": "SAT", "mng_ac": "MNG-AC"}


def row_name(scheme: str, threats=()) -> str:
    """The table name of a run of ``scheme`` on ``threats`` (see :data:`ROW_OF`)."""
    threats = list(threats)
    key = f"adv_{threats[0]}" if scheme == "adv" and len(threats) == 1 else scheme
    return ROW_OF.get(key, key)


#: Every empirical command (``python -m empirical.<name>``).
COMMANDS = ("train", "evaluate", "reproduce", "budget_curves", "check_linf", "online")

#: Valid ranges of the shared numeric flags, in the one format of every range of the project (theory.core.params):
#: (low, high, which ends are open, reason for the bounds).
RANGES = {
    "seed": (0, 2**63 - 1, "[]", "a 64-bit signed integer, as JSON readers and torch store it"),
    "threads": (1, 1024, "[]", "at least one thread; more than 1024 exceeds any machine's cores"),
    "batch_size": (1, 65536, "[]", "a batch of 65,536 CIFAR-10 images is 0.8 GB of float32 before any "
                                   "activation: larger batches exhaust memory"),
    "test_limit": (1, 10000, "[]", "the MNIST, Fashion-MNIST and CIFAR-10 test splits have 10,000 images"),
    "train_limit": (1, 60000, "[]", "the largest training split (MNIST, Fashion-MNIST) has 60,000 images"),
    "time_limit": (0.0, 1e7, "[]", "seconds; 0 stops after the first unit of work, 1e7 s (116 days) is "
                                   "beyond any run"),
}
#: The flags of RANGES that take integers.
INTEGER_FLAGS = frozenset({"seed", "threads", "batch_size", "test_limit", "train_limit"})

#: Largest budget per threat and why (a larger ball contains the whole pixel box [0, 1]^d for every data
#: set here, d <= 3 * 32 * 32 = 3072; an angle beyond 180 degrees repeats; a shift beyond 32 pixels moves
#: every image out of its frame).
BUDGET_RANGES = {
    "linf": (1.0, "pixels lie in [0, 1]: a larger l_inf ball holds the whole box"),
    "l2": (56.0, "the box's diameter is sqrt(3072) < 56: a larger l_2 ball holds the whole box"),
    "l1": (3072.0, "the box's l_1 diameter is d <= 3072: a larger l_1 ball holds the whole box"),
    "rt": ((180.0, 32.0), "max angle <= 180 degrees (beyond, rotations repeat) / max shift <= 32 pixels "
                          "(beyond, the image leaves its frame)"),
}


def _budget(name: str, text: str):
    hi, why = BUDGET_RANGES[name]
    if name == "rt":
        angle, sep, shift = text.partition("/")
        if not sep:
            raise argparse.ArgumentTypeError(f"rt budget must be <max angle>/<max shift>, e.g. rt=30/3, got "
                                             f"{text!r}")
        try:
            return (number(float, 0.0, hi[0], why=why)(angle), number(float, 0.0, hi[1], why=why)(shift))
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"rt={text}: {exc}") from None
    try:
        return number(float, 0.0, hi, lo_open=True, why=why)(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{name}={text}: {exc}") from None


def parse_eps(text: str, *, multiple: bool = False) -> dict:
    """Budgets from ``name=value[,name=value...]``: {name: value}, or with ``multiple`` {name: [values]}.

    Names are the registered threats (linf, l2, l1, rt); l_p values are numbers in (0, max], rt values
    ``angle/shift``; the ranges and their reasons are :data:`BUDGET_RANGES`.  Raises
    ``argparse.ArgumentTypeError`` with a one-line message.
    """
    out: dict = {}
    items = [t.strip() for t in str(text).split(",")]
    if not any(items):
        raise argparse.ArgumentTypeError("empty budget list (allowed: name=value[,name=value...], e.g. "
                                         "linf=0.3,l1=10,l2=2,rt=30/3)")
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not value.strip():
            raise argparse.ArgumentTypeError(f"items must look like name=value, got {item!r} (e.g. "
                                             f"linf=0.3,l1=10,l2=2,rt=30/3)")
        if name not in BUDGET_RANGES:
            raise argparse.ArgumentTypeError(f"unknown threat {name!r} (allowed: {', '.join(BUDGET_RANGES)})")
        v = _budget(name, value.strip())
        if multiple:
            out.setdefault(name, []).append(v)
        elif name in out:
            raise argparse.ArgumentTypeError(f"threat {name!r} given twice")
        else:
            out[name] = v
    return out


def eps_type(text: str) -> dict:
    """argparse type of ``--eps`` (one budget per threat)."""
    return parse_eps(text)


def eps_list_type(text: str) -> dict:
    """argparse type of ``--eps`` with several budgets per threat."""
    return parse_eps(text, multiple=True)


eps_type.__name__ = eps_list_type.__name__ = "budget list"

def path_type(text: str):
    """argparse type of a path flag: a non-empty path (an empty string would mean the current folder)."""
    from pathlib import Path

    if not text.strip():
        raise argparse.ArgumentTypeError("empty path (allowed: a file or folder name)")
    return Path(text)


path_type.__name__ = "path"

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d{1,3})?)$")


def device_type(text: str) -> str:
    """argparse type of ``--device``: auto, cpu, cuda, cuda:N; CUDA must be available when asked for."""
    if not _DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device (allowed: auto, cpu, cuda, cuda:N)")
    if text.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r} requested but CUDA is not available (allowed here: "
                                             f"auto, cpu)")
        index = int(text.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {torch.cuda.device_count()} CUDA "
                                             f"device(s)")
    return text


device_type.__name__ = "device"


def ranged(name: str):
    """The argparse type of the shared numeric flag ``name`` (see :data:`RANGES`)."""
    return range_type(RANGES[name], int if name in INTEGER_FLAGS else float)


def add_common(p: argparse.ArgumentParser, *, dataset: tuple[str, ...] | None = None, data_dir: bool = True,
               device: bool = True, threads: bool = True, seed: bool = True, quiet: bool = True,
               threads_default: int | None = None) -> None:
    """The flags that several commands share, with one meaning and one range each."""
    if dataset is not None:
        p.add_argument("--dataset", default=dataset[0], choices=dataset, help=f"data set [default: {dataset[0]}]")
    if data_dir:
        p.add_argument("--data-dir", type=path_type, default=None, metavar="DIR",
                       help="data folder [default: $ADVTRAIN_DATA_DIR, then ../shared/data]")
    if device:
        p.add_argument("--device", type=device_type, default="auto",
                       help="auto (CUDA when available), cpu, cuda, cuda:N [default: auto]")
    if threads:
        p.add_argument("--threads", type=ranged("threads"), default=threads_default, metavar="N",
                       help="torch CPU threads [default: "
                            + ("torch's" if threads_default is None else str(threads_default)) + "]")
    if seed:
        p.add_argument("--seed", type=ranged("seed"), default=0, metavar="N",
                       help="random seed; same seed, same result [default: 0]")
    if quiet:
        p.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")


def state_ranges(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Append each bounded flag's range and reason (``allowed: ...``) to its help text; the parser."""
    for a in parser._actions:
        allowed = getattr(a.type, "allowed", None)
        if allowed and a.help and "allowed:" not in a.help:
            a.help = f"{a.help} ({allowed.replace('%', '%%')})"
        if isinstance(a, argparse._SubParsersAction):
            for sub in a.choices.values():
                state_ranges(sub)
    return parser


def flag_table() -> str:
    """The markdown table of every empirical command and its flags, read from the parsers (README)."""
    import importlib

    rows = ["| command | flags |", "|---|---|"]

    def flags(parser) -> str:
        return " ".join(a.option_strings[-1] for a in parser._actions
                        if a.option_strings and not isinstance(a, argparse._HelpAction))

    for name in COMMANDS:
        parser = importlib.import_module(f"empirical.{name}").build_parser()
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subs:
            groups: dict[str, list[str]] = {}
            for sub, sp in subs[0].choices.items():
                groups.setdefault(flags(sp), []).append(sub)
            for text, subnames in groups.items():
                joined = "\\|".join(subnames)  # an escaped bar inside a table cell
                rows.append(f"| `python -m empirical.{name} {joined}` | `{text}` |")
        else:
            rows.append(f"| `python -m empirical.{name}` | `{flags(parser)}` |")
    return "\n".join(rows)
