"""Every command's parser, found by importing every module that has a ``main(argv)`` (simulate, empirical,
figures, bench): it is the shared ``simulate.cli.ArgumentParser``, refuses an abbreviated flag with a
"did you mean" naming the whole flag, and hints at a flag typed in the wrong case.

The parser is caught at its first ``parse_known_args`` (no work runs); subcommands are checked one by one.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import sys
from pathlib import Path

import pytest

from simulate.core.cli import ArgumentParser

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("simulate", "empirical", "figures", "bench")


def _cli_modules() -> list[str]:
    """Dotted names of the modules that define ``def main(`` (bench scripts by path)."""
    out = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if "def main(" not in path.read_text():
                continue
            rel = path.relative_to(ROOT).with_suffix("")
            out.append(".".join(rel.parts))
    return out


MODULES = _cli_modules()


class _Caught(Exception):
    def __init__(self, parser):
        self.parser = parser


def _import(name: str):
    if name.startswith("bench."):  # scripts: they import their siblings (bench/mc.py: mc_baselines)
        path = ROOT / (name.replace(".", "/") + ".py")
        sys.path.insert(0, str(path.parent))
        try:
            spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
        finally:
            sys.path.remove(str(path.parent))
        return mod
    return importlib.import_module(name)


def _parser_of(name: str, monkeypatch) -> argparse.ArgumentParser:
    mod = _import(name)

    original = argparse.ArgumentParser.parse_known_args

    def catch(self, args=None, namespace=None):
        if not self.add_help:  # a pre-parser that picks what the main parser offers (simulate.sweep's engine)
            assert isinstance(self, ArgumentParser) and not self.allow_abbrev, f"{name}: pre-parser {type(self)}"
            return original(self, args, namespace)
        raise _Caught(self)

    with monkeypatch.context() as m:
        m.setattr(argparse.ArgumentParser, "parse_known_args", catch)
        with pytest.raises(_Caught) as caught, contextlib.redirect_stdout(io.StringIO()):
            mod.main(["--help"])
    return caught.value.parser


def _parsers(parser) -> list[tuple[str, argparse.ArgumentParser]]:
    """The parser and those of its subcommands, each with the words that select it."""
    out = [("", parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for word, sub in action.choices.items():
                out.extend((f"{word} {w}".strip(), p) for w, p in _parsers(sub))
    return out


def _abbreviation(parser) -> tuple[str, str] | None:
    """(a unique proper prefix of a long flag, the flag), or None when no flag has one."""
    flags = [s for a in parser._actions for s in a.option_strings if s.startswith("--")]
    flags = [f for f in flags if f != "--help"] or flags  # --help only where there is no other flag
    for flag in sorted(flags, key=len, reverse=True):
        for n in range(3, len(flag)):
            prefix = flag[:n]
            if sum(f.startswith(prefix) for f in flags) == 1:
                return prefix, flag
    return None


def _error(parser, argv) -> tuple[int, str]:
    """Exit status and stderr of ``parser.parse_args(argv)`` with every requirement lifted (so that the
    unknown flag is what it reports)."""
    saved = [(a, a.required) for a in parser._actions]
    for a in parser._actions:
        a.required = False
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(argv)
        return 0, err.getvalue()
    except SystemExit as exc:
        return exc.code, err.getvalue()
    finally:
        for a, required in saved:
            a.required = required


def test_every_command_module_is_found():
    for name in ("simulate.linear.ode", "simulate.linear.mc", "simulate.committee.ode", "simulate.committee.mc",
                 "simulate.linear.protocol", "simulate.tradeoffs.bounds", "empirical.train", "empirical.evaluate",
                 "empirical.download", "figures.__main__", "bench.ode", "bench.costs"):
        assert name in MODULES, name


@pytest.mark.parametrize("name", MODULES)
def test_parser_refuses_abbreviations_and_hints(name, monkeypatch):
    if name.startswith("empirical") or name in ("bench.attacks", "bench.train", "bench.l1_variants",
                                                "bench.eval_vs_autoattack"):
        pytest.importorskip("torch")
    parser = _parser_of(name, monkeypatch)
    checked = 0
    for words, p in _parsers(parser):
        assert isinstance(p, ArgumentParser), f"{name} {words}: {type(p)} is not simulate.cli.ArgumentParser"
        assert p.allow_abbrev is False, f"{name} {words}"
        found = _abbreviation(p)
        if found is None:
            continue
        prefix, flag = found
        code, err = _error(p, [prefix])
        assert code == 2, f"{name} {words}: {prefix} (for {flag}) was accepted"
        assert "unrecognized arguments" in err and "did you mean" in err and flag in err, (name, words, err)
        assert len(err.strip().splitlines()) == 1, err
        upper = flag.upper() if flag.upper() != flag else flag.lower()
        if upper not in [s for a in p._actions for s in a.option_strings]:
            code, err = _error(p, [upper])
            assert code == 2 and "did you mean" in err and flag in err, (name, words, err)
        checked += 1
    assert checked, f"{name}: no flag checked"


def test_the_check_fails_for_a_parser_that_takes_abbreviations():
    p = argparse.ArgumentParser(prog="x")
    p.add_argument("--non-robust-only", action="store_true")
    prefix, flag = _abbreviation(p)
    assert _error(p, [prefix])[0] == 0


def test_errors_say_what_is_allowed(capsys):
    """argparse's and the library's phrasings end in one form: "(allowed: ...)" or a near-miss hint."""
    from simulate import ode

    for argv, expected in ((["--method", "foo"], "(allowed: auto, DOP853"),
                           (["--eps-law", "Uniform"], "did you mean uniform?"),
                           (["--rho", "-1"], "--rho: rho = -1.0 is out of range (allowed: (0, 100];"),
                           (["--r0", "0.1"], "did you mean --R0?")):
        with pytest.raises(SystemExit) as exc:
            ode.main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and expected in err and err.count("\n") == 1, (argv, err)
        assert "(see --help)" not in err, err


def test_one_scheme_vocabulary():
    """The rows of the tables (Nat, Adv_inf, ..., MNG-AC) come from empirical.train's --scheme/--threats through
    the one mapping empirical.cli.row_name; every row of empirical.reproduce agrees with it."""
    from empirical.cli import row_name
    from empirical.reproduce import SCHEMES_TABLE

    for row, (scheme, threats) in SCHEMES_TABLE.items():
        names = [t for t in threats.split(",") if t]
        assert row_name(scheme, names if scheme == "adv" else ()) == row, (row, scheme, threats)
    assert row_name("adv", ["linf"]) == "Adv_inf" and row_name("natural") == "Nat"
