"""The README's comparisons with the reference AutoAttack on 1,000 images and its l_inf check table say what their
results files hold: the accuracies of (b) the suite, (c) AutoAttack standard and the APGD pair, their CPU seconds and
the ratio, the examples broken first by each attack of the suite, and the check's previous -> now cells.  No torch:
the files are read as JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .markdown import table_rows
from .tolerances import README_3_DECIMALS

ROOT = Path(__file__).resolve().parent.parent


def _sentence(anchor: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(anchor)
    return " ".join(text[start:text.index("\n\n", start)].split())


@pytest.mark.parametrize("anchor, threat", [("`results/mnist_eval_linf_1000_cpu_same_load.json`", "linf")])
def test_same_load_pair_is_the_results_file(anchor, threat):
    rows = json.loads((ROOT / "results" / anchor.strip("`").split("/", 1)[1]).read_text())["rows"]
    new, ref, pair = (rows[k][threat] for k in ("new", "ref", "apgd (prefix of new)"))
    s = _sentence(anchor)
    m = re.search(r"\(b\) ([\d.]+)% in ([\d,]+) CPU s, \(c\) ([\d.]+)% in ([\d,]+) s, ratio ([\d.]+) "
                  r"\(APGD pair ([\d.]+)%, ([\d,]+) s\)", s)
    assert m, s[:300]
    acc_b, cpu_b, acc_c, cpu_c, ratio, acc_a, cpu_a = (float(g.replace(",", "")) for g in m.groups())
    # one decimal of a percentage and whole CPU seconds, as printed
    for shown, value in ((acc_b, new["accuracy_mean"]), (acc_c, ref["accuracy_mean"]), (acc_a, pair["accuracy_mean"])):
        assert abs(shown - 100 * value) <= 0.05 + 1e-9, (shown, value)
    for shown, value in ((cpu_b, new["cpu_seconds_mean"]), (cpu_c, ref["cpu_seconds_mean"]),
                         (cpu_a, pair["cpu_seconds_mean"])):
        assert abs(shown - value) <= 0.5, (shown, value)
    assert abs(ratio - new["cpu_seconds_mean"] / ref["cpu_seconds_mean"]) <= 0.005 + README_3_DECIMALS
    log = new["broken_by_attack"]["0"]
    m = re.search(r"APGD-CE (\d+), APGD-T (\d+), FAB-T (\d+), Square (\d+) breaks", s)
    assert m and [int(g) for g in m.groups()] == [log[a] for a in ("apgd-ce", "apgd-t", "fab-t", "square")]
    # every clean-correct example that is not robust was broken first by one attack of the suite
    assert sum(log.values()) == round((new["clean_on_these_images"] - new["accuracy_mean"]) * new["n"])


def _table(header: str) -> dict[str, list[str]]:
    return table_rows((ROOT / "README.md").read_text(), header)


def test_linf_check_table_is_the_results_file():
    """Each "previous → now" cell is the file's record of the previous run → its own value (3 decimals); the union
    is the suites' and the grid's now, the APGD columns' and the grid's before; the attack log sentence is the
    file's ``broken_by_attack``."""
    d = json.loads((ROOT / "results" / "mnist_linf_check.json").read_text())
    table = _table("| check column | previous → now |")
    old = {"clean": d["previous"]["clean_accuracy"], "union": d["previous"]["union_accuracy_apgd_rt"],
           **d["previous"]["attacks"]}
    now = {"clean": d["clean_accuracy"], "union": d["union_accuracy_suite_rt"],
           **{k: v["robust_accuracy"] for k, v in d["attacks"].items()}}
    assert sorted(table) == sorted(["clean", *d["attacks"], "union"])  # every column of the file (grouped by threat)
    for name, (cell,) in table.items():
        m = re.match(r"(–|[\d.]+) → ([\d.]+)$", cell)
        assert m, (name, cell)
        assert abs(float(m[2]) - now[name]) < README_3_DECIMALS, (name, cell, now[name])
        if m[1] == "–":
            assert name not in old
        else:
            assert abs(float(m[1]) - old[name]) < README_3_DECIMALS, (name, cell, old[name])
    s = _sentence("Examples broken first by APGD-CE / APGD-T / FAB-T / Square (of 1,000): l_inf")
    for threat, word in (("linf", "l_inf"), ("l2", "l_2"), ("l1", "l_1")):
        log = d["attack_log"]["broken_by_attack"][f"{threat}/suite"]
        m = re.search(word + r" (\d+) / (\d+) / (\d+) / (\d+)", s)
        assert m and [int(g) for g in m.groups()] == [log[a] for a in ("apgd-ce", "apgd-t", "fab-t", "square")]


def test_masked_model_table_is_the_results_file():
    rows = json.loads((ROOT / "results" / "mnist_linf_check_vs_autoattack.json").read_text())["rows"]
    table = _table("| evaluation | l_2 2 (seeds 0, 1, 2) | l_1 10 (seeds 0, 1, 2) | CPU s, seed mean (l_2 / l_1) |")
    keys = {"(a)": "apgd (prefix of new)", "(b)": "new", "(c)": "ref"}
    assert len(table) == 3
    for first, cells in table.items():
        r = rows[keys[first[:3]]]
        for cell, t in zip(cells[:2], ("l2", "l1")):  # "mean% (seed 0, seed 1, seed 2)", one decimal
            m = re.match(r"([\d.]+)% \(([\d., ]+)\)$", cell)
            assert m, (first, cell)
            assert abs(float(m[1]) - 100 * r[t]["accuracy_mean"]) <= 0.05 + 1e-9, (first, t, cell)
            per_seed = [float(v) for v in m[2].split(", ")]
            assert len(per_seed) == len(r[t]["accuracy_per_seed"]) == 3, (first, t, cell)
            for v, seed in zip(per_seed, ("0", "1", "2")):
                assert abs(v - 100 * r[t]["accuracy_per_seed"][seed]) <= 0.05 + 1e-9, (first, t, seed, cell)
        cpu = [float(c) for c in cells[2].split(" / ")]
        assert all(abs(c - r[t]["cpu_seconds_mean"]) <= 0.5 for c, t in zip(cpu, ("l2", "l1"))), (first, cells[2])
