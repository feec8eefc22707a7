"""The README's same-load comparison with the reference AutoAttack on 1,000 images says what its results files hold:
the accuracies of (b) the suite, (c) AutoAttack standard and the APGD pair, their CPU seconds and the ratio, and the
examples broken first by each attack of the suite.  No torch: the files are read as JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

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
