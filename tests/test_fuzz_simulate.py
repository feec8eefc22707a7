"""Bad input to every simulate/figures command, in-process through ``main(argv)``: never a traceback, never
a silent output, always one line on stderr naming the parameter and exit status 2.

The cases are generated from the commands' own argparse parsers, so a new flag is fuzzed without editing
this file: every numeric flag gets non-numbers, empty strings, NaN, +-inf, +-1e308, 10^30 and the values
just outside its stated range that the issue lists (0, -1, ...); every choice flag an unknown choice; every
path flag a folder, a path under a regular file, a path in a folder that cannot be created and a wrong
suffix; plus corrupt input files and combinations that are each valid alone but too large together.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

import numpy as np
import pytest

from simulate import cli

GENERIC_BAD = ["abc", "", "nan", "inf", "-inf", "1e308", "-1e308", "1" + "0" * 30]
EXTRA_BAD = {  # values near the edges, from the valid ranges each flag states
    "--rho": ["0", "-1", "101"], "--prior": ["0", "1", "-0.5"], "--v1": ["0", "-1", "1e5"], "--v2": ["0"],
    "--eta-w": ["0", "11"], "--eta-b": ["-1", "11"], "--eps": ["-0.1", "101"], "--erf-scale": ["0", "-1"],
    "--R0": ["1.5", "-1.01"], "--b0": ["101"], "--alpha-max": ["0", "-1", "1e9"], "--alpha-step": ["0", "-1"],
    "--eps-test": ["-1", "1e4"], "--rtol": ["0", "1"], "--atol": ["0", "1"], "--N": ["0", "1", "-1"],
    "--replicas": ["0", "-1"], "--seed": ["-1", str(1 << 64)], "--threads": ["0", "-1", "100000"],
    "--checkpoint-every": ["0", "-1"], "--time-limit": ["0", "-1"], "--familywise": ["0", "1"],
    "--d": ["0", "-1"], "--a": ["0", "-1"], "--p0": ["-0.1", "1.1"], "--eps-inf": ["-1"], "--eps-1": ["-1"],
    "--eps-2": ["-1"], "--n-theta": ["0", "7"], "--n-psi": ["0", "2"], "--n-tau": ["-1"], "--t": ["-1"],
    "--alpha": ["-1"], "--eps-inf-hat": ["-1"], "--eps-1-hat": ["-1"],
}


def _commands(tmp: Path):
    """(name, main, parser builder or None, fast valid arguments)."""
    from figures.__main__ import main as figures_main
    from simulate import committee, compare, mc, ode, scenarios, structured, tradeoff

    fast_mc = ["--N", "20", "--replicas", "2", "--alpha-max", "1", "--engine", "reduced", "--quiet"]
    return [
        ("simulate.ode", ode.main, ode.build_parser, ["--alpha-max", "2", "--quiet"]),
        ("simulate.mc", mc.main, mc.build_parser, fast_mc),
        ("simulate.compare", compare.main, compare.build_parser, fast_mc),
        ("simulate.scenarios", scenarios.main, None, []),
        ("simulate.tradeoff lp", tradeoff.main, lambda: _sub(tradeoff.build_parser(), "lp"),
         ["lp", "--n-theta", "9", "--n-psi", "3", "--n-tau", "1", "--quiet"]),
        ("simulate.tradeoff ring", tradeoff.main, lambda: _sub(tradeoff.build_parser(), "ring"),
         ["ring", "--n-theta", "9", "--n-psi", "3", "--quiet"]),
        ("simulate.tradeoff bridge", tradeoff.main, lambda: _sub(tradeoff.build_parser(), "bridge"),
         ["bridge", "--alpha", "1", "--quiet"]),
        ("simulate.committee", committee.main, committee.build_parser,
         ["--K", "1", "--alpha-max", "0.5", "--alpha-step", "0.5", "--quiet"]),
        ("simulate.structured", structured.main, structured.build_parser,
         ["--N", "20", "--alpha-max", "0.5", "--alpha-step", "0.5", "--quiet"]),
        ("figures", figures_main, None, ["tradeoffs", "--quick", "--quiet", "--out", str(tmp / "fig")]),
    ]


def _sub(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def _cases(parser: argparse.ArgumentParser | None, tmp: Path):
    """(flag, [extra argv]) for every flag of the parser."""
    reg = tmp / "a-regular-file"
    reg.write_text("x")
    if parser is None:
        return
    seen = set()
    for action in parser._actions:
        if not action.option_strings or isinstance(action, (argparse._HelpAction, argparse._StoreTrueAction)):
            continue
        if action.dest in seen:  # an alias of a flag already fuzzed (--json for --out)
            continue
        seen.add(action.dest)
        flag = max(action.option_strings, key=len)
        nargs = action.nargs if isinstance(action.nargs, int) else 1
        pad = ["1"] * (nargs - 1)
        if action.choices is not None:
            yield flag, [flag, "not-a-choice"]
        elif action.type in (cli.real, int, float):
            for bad in GENERIC_BAD + EXTRA_BAD.get(flag, []):
                yield flag, [flag, bad, *pad]
        elif action.type is Path:
            folder = tmp / f"folder{len(flag)}"
            folder.mkdir(exist_ok=True)
            suffix = {"--variances": ".npy", "--checkpoint": ".npz"}.get(flag, ".json")
            yield flag, [flag, str(folder)]                                   # names a folder
            yield flag, [flag, str(reg / f"x{suffix}")]                        # under a regular file
            yield flag, [flag, f"/proc/no-such-folder/x{suffix}"]              # cannot be created
            if flag in ("--out", "--plot", "--checkpoint"):
                yield flag, [flag, str(tmp / "x.wrong-suffix")]
            if flag in ("--variances", "--checkpoint"):                        # corrupt files
                corrupt = tmp / f"corrupt{suffix}"
                corrupt.write_bytes(b"PK\x03\x04 truncated")
                yield flag, [flag, str(corrupt)]
                wrong = tmp / f"wrong-shape{suffix}"
                np.save(tmp / "wrong-shape.npy", np.ones(3)) if suffix == ".npy" else \
                    np.savez(wrong, signature=np.array("another run"))
                yield flag, [flag, str(wrong)]


COMBINED = {  # each flag valid alone, the combination not (memory, resolution)
    "simulate.ode": [("--alpha-step", ["--alpha-max", "1e6", "--alpha-step", "1e-3"])],
    "simulate.mc": [("--replicas", ["--N", str(1 << 26), "--replicas", str(1 << 20), "--engine", "full"]),
                    ("--rho", ["--rho", "100", "--v1", "1e-4"]),
                    ("--variances", ["--variances", "PLACEHOLDER", "--engine", "reduced"])],
    "simulate.tradeoff lp": [("--n-theta", ["--n-theta", "20001", "--n-psi", "10001", "--n-tau", "100"]),
                             ("--clf", ["--clf", "0", "0", "1"])],
    "figures": [("NAME", ["not-a-figure"]), ("NAME", [])],
}


def _run(main, argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def check_case(main, argv, flag) -> str | None:
    """None when ``main(argv)`` exits 2 with one stderr line naming ``flag``; else what went wrong."""
    try:
        code, out, err = _run(main, argv)
    except BaseException as exc:  # a traceback
        return f"{type(exc).__name__}: {exc}"
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    key = flag.lstrip("-").replace("-", "_")
    named = flag in err or key in err or flag == "NAME"
    if code != 2 or len(lines) != 1 or not named:
        return f"exit {code}, stderr {err.strip()!r}, stdout {out[:80]!r}"
    return None


def test_the_check_fails_without_a_stated_range(monkeypatch):
    """A deliberately wrong variant: without rho's upper bound, --rho 1e308 reaches the ODE solver's error."""
    from simulate import ode
    from theory import params

    assert check_case(ode.main, ["--rho", "1e308", "--quiet"], "--rho") is None
    monkeypatch.setitem(params.RANGES, "rho", (0.0, float("inf"), "(]", "no bound"))
    monkeypatch.setattr(params, "SNR_MAX", float("inf"))
    # DOP853 gives up at once on rho = 1e308 (LSODA, the default, would grind on: the range is the guard)
    problem = check_case(ode.main, ["--rho", "1e308", "--quiet", "--method", "DOP853"], "--rho")
    assert problem is not None and "Error" in problem, problem


def test_every_bad_argument_is_one_line_naming_the_parameter(tmp_path):
    tested, problems = 0, []
    for name, main, build, fast in _commands(tmp_path):
        parser = build() if build is not None else None
        cases = list(_cases(parser, tmp_path))
        if name == "simulate.scenarios":
            cases = [("--bogus", ["--bogus"])]
        for flag, argv_extra in COMBINED.get(name, []):
            if "PLACEHOLDER" in argv_extra:
                np.save(tmp_path / "v20.npy", np.ones(20))
                argv_extra = [str(tmp_path / "v20.npy") if a == "PLACEHOLDER" else a for a in argv_extra]
            cases.append((flag, argv_extra))
        for flag, extra in cases:
            argv = extra if flag == "NAME" else fast + extra  # NAME: the figures' positional names
            tested += 1
            problem = check_case(main, argv, flag)
            if problem:
                problems.append(f"{name} {argv}: {problem}")
    print(f"{tested} bad-argument cases")
    assert tested >= 300
    assert not problems, f"{len(problems)} of {tested} cases:\n" + "\n".join(problems[:40])
