"""One flag generator, one range per field: a flag that several commands share states the same valid range in
every command's --help (the ranges come from the fields, through simulate.core.cli.add_param_arguments)."""

import argparse
import importlib
import re

import pytest

COMMANDS = ["simulate.ode", "simulate.mc", "simulate.compare", "simulate.committee", "simulate.structured",
            "simulate.sweep", "simulate.protocol", "simulate.multinorm.command"]
# the physics flags of the two-cluster mixture: every command that takes them states their range
MIXTURE_FLAGS = ["--rho", "--prior", "--v1", "--v2", "--eta-w", "--eta-b", "--eps"]
VALID = re.compile(r"valid ([\[(][^\])]*[\])])")


def ranges_of(parser: argparse.ArgumentParser) -> dict[str, str]:
    """{flag: the 'valid ...' interval its help states} for every flag whose help states one."""
    out = {}
    for action in parser._actions:  # argparse offers no public list of a parser's actions
        m = VALID.search(" ".join((action.help or "").split()))
        if m:
            for flag in action.option_strings:
                out[flag] = m.group(1)
    return out


def disagreements(parsers: dict[str, argparse.ArgumentParser]) -> list[str]:
    seen: dict[str, dict[str, str]] = {}
    for name, parser in parsers.items():
        for flag, rng in ranges_of(parser).items():
            seen.setdefault(flag, {})[name] = rng
    return [f"{flag}: {by}" for flag, by in sorted(seen.items()) if len(set(by.values())) > 1]


@pytest.fixture(scope="module")
def parsers():
    return {name: importlib.import_module(name).build_parser() for name in COMMANDS}


def test_shared_flags_state_one_range(parsers):
    bad = disagreements(parsers)
    assert not bad, "\n".join(bad)


def test_the_mixture_flags_state_their_range_everywhere(parsers):
    missing = []
    for name, parser in parsers.items():
        flags = {f for a in parser._actions for f in a.option_strings}
        stated = ranges_of(parser)
        missing += [f"{name} {f}" for f in MIXTURE_FLAGS if f in flags and f not in stated]
    assert not missing, missing
    committee = ranges_of(parsers["simulate.committee"])
    assert committee["--eta-w"] == ranges_of(parsers["simulate.ode"])["--eta-w"] == "(0, 10]"


def test_a_disagreement_is_found():
    a, b = argparse.ArgumentParser(), argparse.ArgumentParser()
    a.add_argument("--eta-w", help="rate [default: 1; valid (0, 10]]")
    b.add_argument("--eta-w", help="rate [default: 1; valid (0, 100]]")
    assert disagreements({"a": a, "b": b}) == ["--eta-w: {'a': '(0, 10]', 'b': '(0, 100]'}"]
