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

from .core import MEASURED, THREAT_COLORS, FigureSpec, Unavailable, register, series_colors

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
THREATS = ("linf", "l1", "l2")
NAMES = {"linf": "l_inf", "l1": "l_1", "l2": "l_2"}
#: the attacks' names as the papers write them (the curve files record the suite's lower-case names)
ATTACK_LABEL = {"apgd-ce": "APGD-CE", "apgd-t": "APGD-T", "fab-t": "FAB-T", "square": "Square"}


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
    return {"tables": [str(p) for p in paths], "stamps": stamps, "layout": 4}  # layout: what compute() stores


def results_compute(params: dict) -> dict:
    """The tables measured with the current evaluation; a table or curve file marked stale is not drawn
    beside them (its name and reason go into the figure's footnote)."""
    out = {}
    skipped = []
    i = 0
    tables = {path: json.loads(Path(path).read_text()) for path in params["tables"]}
    # stale tables are left out beside current ones; when every table is stale, each is drawn with its reason
    any_fresh = any(not t.get("stale") for t in tables.values())
    for path, t in tables.items():
        reason = str(t.get("stale") or "")
        if reason and any_fresh:
            skipped.append(f"{Path(path).name} (stale: {reason.split(':')[0].split('.')[0][:90]})")
            continue
        rows = [r for r in t["rows"] if "error" not in r]
        tp = t.get("params", {})
        n_test = int(tp.get("test_limit", tp.get("eval_limit", 0)) or 0)  # tables before the rename: eval_limit
        out[f"t{i}/rows"] = np.array([r["row"] for r in rows])
        out[f"t{i}/acc"] = np.array([[r["clean"], *(r["per_threat"].get(k, np.nan) for k in THREATS), r["union"],
                                      r["average"]] for r in rows], float).reshape(-1, 6)
        out[f"t{i}/n"] = np.array([int(r.get("n_test") or n_test) for r in rows])
        pub = t.get("published_union", {})
        out[f"t{i}/published"] = np.array([pub.get(r["row"], {}).get("union", np.nan) for r in rows], float)
        # the evaluation as the table's params name it (tables before that field: the APGD pair)
        attacks = str(tp.get("eval_attacks", "")).split("(")[-1].rstrip(")") or "APGD-CE + APGD-T"
        out[f"t{i}/title"] = np.array(f"{Path(path).stem}: {tp.get('dataset', '?')}, first {n_test} test images, "
                                      f"evaluation {attacks}")
        out[f"t{i}/note"] = np.array(t.get("note", ""))
        side = _curves_path(Path(path))
        side_json = json.loads(side.read_text()) if side.exists() else {}
        side_reason = str(side_json.get("stale") or "")
        if side_reason and not (reason and side_reason == reason):  # curves as stale as their table go with it
            if not reason:
                skipped.append(f"{side.name} (stale: {side_reason.split(':')[0].split('.')[0][:90]})")
                side_json = {}
            elif "training attacks" in side_reason:
                skipped.append(f"{side.name} (stale: {side_reason.split(':')[0].split('.')[0][:90]})")
                side_json = {}
        out[f"t{i}/stale"] = np.array(reason.split(":")[0].split(".")[0].split(" (")[0].lower()[:60])
        sp = side_json.get("params", {})
        suite = next(iter(sp.get("attacks", {}).values()), None)  # recorded since FAB-T and Square joined 'eval'
        out[f"t{i}/curve_n"] = np.array(int(sp.get("n_test", n_test)))  # a row's own curves: the table's images
        out[f"t{i}/curve_attacks"] = np.array(
            " + ".join(ATTACK_LABEL.get(a, a.upper()) for a in suite) if suite else
            {"train": "PGD-10 / SLIDE-10 (training-strength)", "apgd": "APGD-CE + APGD-T",
             "eval": "APGD-CE + APGD-T (the 'eval' suite before FAB-T and Square joined it)"}
            .get(sp.get("strength"), "as in the table"))
        for r in rows:
            curves = {**r.get("budget_curves", {}), **side_json.get("curves", {}).get(r["row"], {})}
            for threat, curve in curves.items():
                out[f"t{i}/curve/{r['row']}/{threat}/eps"] = np.asarray(curve["eps"], float)
                out[f"t{i}/curve/{r['row']}/{threat}/acc"] = np.asarray(curve["accuracy"], float)
        i += 1
    if i == 0:
        raise Unavailable("no results/*_table.json with rows: run python -m empirical.reproduce")
    out["n_tables"] = np.array(i)
    out["skipped"] = np.array(skipped, dtype=str)
    return out


def _se(p, n):
    """Binomial standard error of an accuracy p measured on n images."""
    p = np.asarray(p, float)
    return np.sqrt(np.clip(p * (1 - p), 0, None) / np.maximum(n, 1))


def results_plot(data: dict, params: dict):
    import matplotlib.pyplot as plt

    n = int(data["n_tables"])
    has_curves = [any(k.startswith(f"t{i}/curve/") for k in data) for i in range(n)]
    fig = plt.figure(figsize=(19, 5.3 * n + 0.6), constrained_layout=True)
    subfigs = np.atleast_1d(fig.subfigures(n, 1))
    labels = ["clean", "l_inf", "l_1", "l_2", "union"]
    keys = ["clean", "linf", "l1", "l2", "union"]
    for i, sub in enumerate(subfigs):
        ncols = 1 + 3 * has_curves[i]
        axes = np.atleast_1d(sub.subplots(1, ncols, gridspec_kw={"width_ratios": [2.2] + [1] * (ncols - 1)}))
        ax = axes[0]
        rows, acc, nimg = data[f"t{i}/rows"], data[f"t{i}/acc"], data[f"t{i}/n"]
        x = np.arange(len(rows))
        width = 0.8 / 5
        for j in range(5):
            ax.bar(x + (j - 2) * width, acc[:, j], width, yerr=_se(acc[:, j], nimg), capsize=1.5,
                   error_kw={"elinewidth": 0.7}, label=labels[j], color=THREAT_COLORS[keys[j]])
        pub = data[f"t{i}/published"]
        ok = np.isfinite(pub)
        if ok.any():
            ax.plot(x[ok] + 2 * width, pub[ok], "k*", ms=10, label="published union (full budget)")
        ax.set_xticks(x, rows)
        # a table of few rows keeps the bar width of a nine-row one, centred
        pad = max(0.0, (9 - len(rows)) / 2)
        ax.set_xlim(-0.5 - pad, len(rows) - 0.5 + pad)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy (± binomial s.e.)")
        ax.set_title("accuracy per threat and union, per training scheme", fontsize=10)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=6, fontsize=8, frameon=False)
        colors = dict(zip(rows, series_colors(len(rows))))
        ncurve = int(data[f"t{i}/curve_n"])
        for j, threat in enumerate(THREATS, start=1):
            if ncols == 1:
                break
            ax = axes[j]
            for row in rows:
                key = f"t{i}/curve/{row}/{threat}"
                if f"{key}/eps" in data:
                    a = data[f"{key}/acc"]
                    ax.errorbar(data[f"{key}/eps"], a, yerr=_se(a, ncurve), color=colors[row], label=str(row),
                                lw=1, **{**MEASURED, "fmt": "o-"})
            ax.set_xlabel(f"{NAMES[threat]} budget eps")
            ax.set_ylim(0, 1)
            ax.set_title(f"accuracy vs {NAMES[threat]} budget (± s.e.)", fontsize=10)
        if ncols > 1:
            axes[2].legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=5, fontsize=8, frameon=False)
        curves = (f"; budget curves: {ncurve} images, {data[f't{i}/curve_attacks']}" if ncols > 1 else
                  "; no current budget curves for this table")
        stale = str(data.get(f"t{i}/stale", ""))
        sub.suptitle((f"STALE, {stale}: " if stale else "") + str(data[f"t{i}/title"]) + curves, fontsize=10,
                     color="#d62728" if stale else "k")
    skipped = [str(s) for s in np.atleast_1d(data.get("skipped", np.array([], dtype=str)))]
    title = ("Multi-perturbation training on MNIST (l_inf 0.3, l_1 10, l_2 2): robustness to l_inf does not carry "
             "over to l_1 and vice versa; the multi-norm schemes hold both only partly")
    if skipped:  # the names only: each file's own 'stale' field gives its reason
        title += "\nnot drawn (marked stale in the file): " + ", ".join(s.split(" ")[0] for s in skipped)
    fig.suptitle(title, fontsize=11)
    return fig


register(FigureSpec("empirical", "multi-perturbation training: accuracy per threat, union accuracy and "
                    "published numbers, from results/*_table.json", results_params, results_compute, results_plot))
