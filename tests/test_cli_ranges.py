"""One flag generator, one range per field: a flag that several commands share states the same valid range in
every command's --help (the ranges come from the fields, through simulate.core.cli.add_param_arguments, or from
one table of shared ranges).  A command states a range as "valid [lo, hi]" (checked when the parameters are
built) or as "allowed: number in [lo, hi]" (checked when the flag is parsed); both are read here."""

import argparse
import importlib
import re

import pytest

COMMANDS = ["simulate.ode", "simulate.mc", "simulate.compare", "simulate.committee", "simulate.structured",
            "simulate.sweep", "simulate.protocol", "simulate.multinorm.command", "simulate.tradeoff",
            "simulate.mc_committee"]
# the empirical commands (torch): their shared flags (--seed, --batch-size, --test-limit, ...) and the model
# flags of empirical.online, which feed theory.Params
EMPIRICAL = ["empirical.train", "empirical.evaluate", "empirical.budget_curves", "empirical.reproduce",
             "empirical.online", "empirical.check_linf"]
#: flags whose range differs on purpose in one command, with the reason
DIFFERENT_ON_PURPOSE = {
    ("--test-limit", "empirical.train"): "0 means no final evaluation; the other commands evaluate at least one "
                                         "image",
    ("--train-limit", "empirical.online"): "the pair of classes needs an example of each, so at least 2",
}
# the physics flags of the two-cluster mixture: every command that takes them states their range
MIXTURE_FLAGS = ["--rho", "--prior", "--v1", "--v2", "--eta-w", "--eta-b", "--eps"]
VALID = re.compile(r"(?:valid|allowed: (?:integer|number) in) ([\[(][^\])]*[\])])")


def ranges_of(parser: argparse.ArgumentParser) -> dict[str, str]:
    """{flag: the 'valid ...' interval its help states} for every flag whose help states one."""
    out = {}
    for action in parser._actions:  # argparse offers no public list of a parser's actions
        m = VALID.search(" ".join((action.help or "").split()))
        if m:
            for flag in action.option_strings:
                out[flag] = m.group(1)
    return out


def disagreements(parsers: dict[str, argparse.ArgumentParser], on_purpose=()) -> list[str]:
    seen: dict[str, dict[str, str]] = {}
    for name, parser in parsers.items():
        for flag, rng in ranges_of(parser).items():
            if (flag, name) not in on_purpose:
                seen.setdefault(flag, {})[name] = rng
    return [f"{flag}: {by}" for flag, by in sorted(seen.items()) if len(set(by.values())) > 1]


@pytest.fixture(scope="module")
def parsers():
    return {name: importlib.import_module(name).build_parser() for name in COMMANDS}


@pytest.fixture(scope="module")
def all_parsers(parsers):
    pytest.importorskip("torch")
    return {**parsers, **{name: importlib.import_module(name).build_parser() for name in EMPIRICAL}}


def test_shared_flags_state_one_range(parsers):
    bad = disagreements(parsers)
    assert not bad, "\n".join(bad)


def test_shared_flags_state_one_range_in_every_command(all_parsers):
    """The simulate and empirical commands together: --eta-w of empirical.online is theory.Params' (0, 10], the
    shared empirical flags (--seed, --batch-size, --threads, ...) state one range; the exceptions are listed with
    their reasons, and each is a real difference (an exception that no longer differs is dropped from the list)."""
    bad = disagreements(all_parsers, DIFFERENT_ON_PURPOSE)
    assert not bad, "\n".join(bad)
    for flag, name in DIFFERENT_ON_PURPOSE:
        others = {r for n, p in all_parsers.items() if n != name for f, r in ranges_of(p).items() if f == flag}
        assert others and ranges_of(all_parsers[name])[flag] not in others, (flag, name)


def test_train_flags_come_from_the_config_fields(all_parsers):
    """empirical.train's flags are generated from TrainConfig's fields: each numeric field's help states the
    range of its metadata, and a value outside it stops at parsing with one line naming the flag."""
    from dataclasses import fields

    from empirical.train_config import TrainConfig

    stated = ranges_of(all_parsers["empirical.train"])
    numeric = [f for f in fields(TrainConfig) if "range" in f.metadata]
    assert len(numeric) >= 10
    for f in numeric:
        lo, hi, ends, _ = f.metadata["range"]
        flag = "--" + f.name.replace("_", "-")
        assert flag in stated, flag
        assert stated[flag].startswith(ends[0]) and stated[flag].endswith(ends[1]), (flag, stated[flag])
    with pytest.raises(SystemExit) as exc:
        all_parsers["empirical.train"].parse_args(["--out", "x", "--lr", "20"])
    assert exc.value.code == 2


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
