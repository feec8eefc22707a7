"""Figure 7: empirical multi-perturbation results read from the JSON tables in ``results/``.

Each ``results/*_table.json`` (written by ``python -m empirical.reproduce``) gives, per training scheme,
the clean, per-threat, union and average accuracy under the evaluation module's strongest attacks, and
the published union accuracies.  Accuracy-versus-budget curves come from ``X_budget_curves.json`` beside
``X_table.json`` (written by ``python -m empirical.budget_curves``: per row {threat: {"eps": [...],
"accuracy": [...]}}) or from a row's own ``budget_curves``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .core import FigureSpec, Unavailable, register

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
THREATS = ("linf", "l1", "l2")


def _tables(results_dir: Path) -> list[Path]:
    paths = sorted(results_dir.glob("*_table.json"))
    if not paths:
        raise Unavailable("no results/*_table.json yet: run python -m empirical.reproduce (see its --help)")
    return paths


def _curves_path(table: Path) -> Path:
    return table.with_name(table.name.replace("_table.json", "_budget_curves.json"))


def results_params(quick: bool) -> dict:
    paths = _tables(RESULTS_DIR)
    # the key follows the files' provenance, so new results are picked up
    stamps = {p.name: json.loads(p.read_text()).get("provenance", {}).get("created")
              for p in paths + [_curves_path(q) for q in paths] if p.exists()}
    return {"tables": [str(p) for p in paths], "stamps": stamps}


def results_compute(params: dict) -> dict:
    out = {"n_tables": np.array(len(params["tables"]))}
    for i, path in enumerate(params["tables"]):
        t = json.loads(Path(path).read_text())
        rows = [r for r in t["rows"] if "error" not in r]
        out[f"t{i}/rows"] = np.array([r["row"] for r in rows])
        out[f"t{i}/acc"] = np.array([[r["clean"], *(r["per_threat"].get(k, np.nan) for k in THREATS), r["union"],
                                      r["average"]] for r in rows], float).reshape(-1, 6)
        pub = t.get("published_union", {})
        out[f"t{i}/published"] = np.array([pub.get(r["row"], {}).get("union", np.nan) for r in rows], float)
        params = t.get("params", {})
        n_test = params.get("test_limit", params.get("eval_limit", "?"))  # tables before the rename: eval_limit
        stale = "\nSTALE: measured with the previous evaluation attacks" if t.get("stale") else ""
        out[f"t{i}/title"] = np.array(f"{Path(path).stem}: {params.get('dataset', '?')}, {n_test} test images{stale}")
        out[f"t{i}/note"] = np.array(t.get("note", ""))
        side = _curves_path(Path(path))
        side_json = json.loads(side.read_text()) if side.exists() else {}
        side_curves = side_json.get("curves", {})
        sp = side_json.get("params", {})
        suite = next(iter(sp.get("attacks", {}).values()), None)  # recorded since FAB-T and Square joined 'eval'
        out[f"t{i}/curve_attacks"] = np.array(
            " + ".join(a.upper() for a in suite) if suite else
            {"train": "PGD-10 / SLIDE-10 (training-strength)", "apgd": "APGD-CE + APGD-T",
             "eval": "APGD-CE + APGD-T (the 'eval' suite before FAB-T and Square joined it)"}
            .get(sp.get("strength"), "as in the table"))
        for r in rows:
            for threat, curve in {**r.get("budget_curves", {}), **side_curves.get(r["row"], {})}.items():
                out[f"t{i}/curve/{r['row']}/{threat}/eps"] = np.asarray(curve["eps"], float)
                out[f"t{i}/curve/{r['row']}/{threat}/acc"] = np.asarray(curve["accuracy"], float)
    return out


def results_plot(data: dict, params: dict):
    import textwrap

    import matplotlib.pyplot as plt

    n = int(data["n_tables"])
    has_curves = [any(k.startswith(f"t{i}/curve/") for k in data) for i in range(n)]
    ncols = 1 + max(has_curves, default=False) * len(THREATS)
    fig, axes = plt.subplots(n, ncols, figsize=(6.5 + 4 * (ncols - 1), 4.6 * n), squeeze=False,
                             constrained_layout=True)
    labels = ["clean", "l_inf", "l_1", "l_2", "union", "average"]
    for i in range(n):
        ax = axes[i, 0]
        rows, acc = data[f"t{i}/rows"], data[f"t{i}/acc"]
        x = np.arange(len(rows))
        width = 0.8 / 5
        for j in range(5):
            ax.bar(x + (j - 2) * width, acc[:, j], width, label=labels[j],
                   color=["0.6", "C0", "C1", "C2", "C3"][j])
        pub = data[f"t{i}/published"]
        ok = np.isfinite(pub)
        if ok.any():
            ax.plot(x[ok] + 2 * width, pub[ok], "k*", ms=10, label="published union")
        ax.set_xticks(x, rows, rotation=30)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        ax.set_title(str(data[f"t{i}/title"]), fontsize=9)
        ax.legend(fontsize=7, ncol=3)
        note = str(data[f"t{i}/note"])
        if note:
            ax.text(0.0, -0.32, "\n".join(textwrap.wrap(note, 95)), transform=ax.transAxes, fontsize=6.5,
                    va="top")
        for j, threat in enumerate(THREATS, start=1):
            if ncols == 1:
                break
            ax = axes[i, j]
            drawn = 0
            for row in rows:
                key = f"t{i}/curve/{row}/{threat}"
                if f"{key}/eps" in data:
                    ax.plot(data[f"{key}/eps"], data[f"{key}/acc"], "o-", ms=3, label=str(row))
                    drawn += 1
            ax.set_xlabel(f"{threat} budget")
            ax.set_ylim(0, 1)
            ax.set_title(f"accuracy vs {threat} budget\n(attacks: {data.get(f't{i}/curve_attacks', '')})",
                         fontsize=8)
            if drawn:
                ax.legend(fontsize=6)
            else:  # this table has no X_budget_curves.json beside it
                ax.text(0.5, 0.5, "no budget curves for this table\n(python -m empirical.budget_curves)",
                        transform=ax.transAxes, ha="center", va="center", fontsize=7)
    return fig


register(FigureSpec("empirical", "multi-perturbation training: accuracy per threat, union accuracy and "
                    "published numbers, from results/*_table.json", results_params, results_compute, results_plot))
