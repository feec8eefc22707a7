"""The README's cost table is the one bench/costs.py wrote into results/costs_cpu.json (regenerated, not typed),
and the markdown stored there is what bench/costs.py makes of the stored rows."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_cost_table_is_the_measured_one():
    stored = json.loads((ROOT / "results" / "costs_cpu.json").read_text())
    assert stored["markdown"] in (ROOT / "README.md").read_text()
    spec = importlib.util.spec_from_file_location("bench_costs", ROOT / "bench" / "costs.py")
    costs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(costs)
    assert costs.markdown(stored["rows"]) == stored["markdown"]
