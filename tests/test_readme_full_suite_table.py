"""The README's full-suite MNIST tables (section "The trade-off under the full suite": cpu-long, cpu preset, cpu-long at 2 epochs) say
what the results files hold: each "previous → now" cell is the stale APGD-pair table's value → the full-suite
table's value (rounded to the README's 3, or for the cpu preset's 100 images 2, decimals), the union's ± is the
binomial standard error over the evaluated images, and the attack log table is each row's ``broken_by_attack``;
the points of the cpu-long budget curves that the README cites are the curve file's.  No torch: the files are read as JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .markdown import table_rows
from .tolerances import README_2_DECIMALS, README_3_DECIMALS as TOL

ROOT = Path(__file__).resolve().parent.parent
THREATS = ("linf", "l1", "l2")


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("**The trade-off under the full suite**")
    return text[start:text.index("\n## ", start)]


#: (table's first header cell, the full-suite results file, the previous APGD-pair one, the README's decimals)
TABLES = [("row", "mnist_cpu_long_full_suite_table.json", "mnist_cpu_long_table.json", 3),
          ("cpu row", "mnist_cpu_full_suite_table.json", "mnist_cpu_table.json", 2),
          ("2-epoch row", "mnist_cpu_long_2ep_full_suite_table.json", "mnist_cpu_long_2ep_table.json", 3)]


@pytest.mark.parametrize("first, new, previous, decimals", TABLES)
def test_previous_to_now_table_is_the_two_results_files(first, new, previous, decimals):
    tol = TOL if decimals == 3 else README_2_DECIMALS
    now = {r["row"]: r for r in json.loads((ROOT / "results" / new).read_text())["rows"]}
    old = {r["row"]: r for r in json.loads((ROOT / "results" / previous).read_text())["rows"]}
    table = table_rows(_section(), f"| {first} | clean | l_inf | l_1 | l_2 | union |")
    assert list(table) == list(now)  # every re-measured row, in the file's order
    for name, cells in table.items():
        def pair(r):
            return [r["clean"], *(r["per_threat"][t] for t in THREATS), r["union"]]
        for cell, a, b in zip(cells, pair(old[name]), pair(now[name])):
            m = re.match(r"([\d.]+) → ([\d.]+)(?: ± ([\d.]+))?$", cell)
            assert m, (name, cell)
            assert abs(float(m[1]) - a) < tol and abs(float(m[2]) - b) < tol, (name, cell, a, b)
        se = float(re.search(r"± ([\d.]+)", cells[-1])[1])
        u, n = now[name]["union"], now[name]["n_test"]
        assert abs(se - (u * (1 - u) / n) ** 0.5) < TOL and abs(now[name]["union_se"] - se) < TOL


@pytest.mark.parametrize("first, new", [(t[0], t[1]) for t in TABLES])
def test_attack_log_table_is_broken_by_attack(first, new):
    now = {r["row"]: r for r in json.loads((ROOT / "results" / new).read_text())["rows"]}
    table = table_rows(_section(), f"| {first} | l_inf | l_1 | l_2 |")
    assert list(table) == list(now)
    for name, cells in table.items():
        log = now[name]["broken_by_attack"]
        assert cells == [" / ".join(str(log[t][a]) for a in ("apgd-ce", "apgd-t", "fab-t", "square")) for t in THREATS]
        # every clean-correct example that is not robust was broken first by one attack of the suite
        for t in THREATS:
            assert sum(log[t].values()) == round((now[name]["clean"] - now[name]["per_threat"][t]) * now[name]["n_test"])


def _curve_sentence() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("`results/mnist_cpu_long_full_suite_budget_curves.json`")
    return " ".join(text[start:text.index("previous curves", start)].split())


@pytest.mark.parametrize("threat,eps", [("linf", 0.3), ("l1", 10.0)])
def test_readme_budget_curve_points_are_the_files(threat, eps):
    """The README's points of the cpu-long full-suite budget curves ("at l_inf 0.3 Adv_inf .47, max .43, ...") are
    the file's accuracies at that budget, rounded to 2 decimals (100 images: one image is 0.01)."""
    curves = json.loads((ROOT / "results" / "mnist_cpu_long_full_suite_budget_curves.json").read_text())["curves"]
    name = {"linf": "l_inf", "l1": "l_1"}[threat]
    m = re.search(rf"at {name} {eps:g} ((?:[A-Za-z_0-9-]+ \.\d\d(?:, )?)+)", _curve_sentence())
    assert m, f"no 'at {name} {eps:g} ...' in the README's curve sentence"
    cited = dict(re.findall(r"([A-Za-z_0-9-]+) (\.\d\d)", m.group(1)))
    assert len(cited) >= 3
    for row, value in cited.items():
        c = curves[row][threat]
        acc = c["accuracy"][c["eps"].index(eps)]
        assert abs(acc - float(value)) <= README_2_DECIMALS, f"{row} {name} {eps:g}: README {value}, file {acc:.4f}"
