"""The tables of ``empirical.online``: the four routes side by side (isotropic ODE, structured theory, Monte Carlo
of the fitted mixture, data) at the report alphas, as rows, as text, as markdown, and the runs as CSV."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np

__all__ = ["route_table", "runs_csv_text", "format_table", "markdown_table"]


def route_table(result: dict[str, Any], report_alphas) -> list[dict[str, Any]]:
    """Rows (route, eps, alpha, E, S, E_se, S_se) of the four routes at the report alphas."""
    alphas = np.asarray(result["alphas"], float)
    rows = []

    def idx(a):
        j = np.flatnonzero(np.isclose(alphas, a, atol=1e-9))
        return int(j[0]) if j.size else None

    eps_values = sorted({float(r["eps"]) for r in result["runs"]})
    for e in eps_values:
        key = f"eps={e:g}"
        real = [r for r in result["runs"] if float(r["eps"]) == e]
        th = result["structured"]["theory"][key]
        iso = result["ode"].get(f"along_B/{key}")
        mc = result["structured"]["mc"].get(key)
        for a in report_alphas:
            i = idx(a)
            if i is None:
                continue
            row = {"eps": e, "alpha": float(a)}
            for q in ("E", "S"):
                vals = np.array([r[q][i] for r in real])
                row[f"{q}_data"] = float(vals.mean())
                row[f"{q}_data_se"] = float(vals.std(ddof=1) / math.sqrt(vals.size)) if vals.size > 1 else float("nan")
                row[f"{q}_theory"] = float(np.mean([t[q][i] for t in th]))
                row[f"{q}_iso_ode"] = float(iso[q][i]) if iso is not None else float("nan")
                if mc is not None:
                    row[f"{q}_mc"] = float(mc[q]["mean"][i])
                    row[f"{q}_mc_se"] = float(mc[q]["se"][i])
                    row[f"{q}_theory_random_start"] = float(mc["theory_random_start"][q][i])
                    if "theory_mc_starts" in mc:
                        row[f"{q}_theory_mc_starts"] = float(mc["theory_mc_starts"][q][i])
                gq = np.array([r[f"{q}_gauss"][i] for r in real]) if f"{q}_gauss" in real[0] else None
                if gq is not None:
                    row[f"{q}_gauss_of_real_w"] = float(gq.mean())
            for q in ("M_plus", "Q_plus", "M_minus", "Q_minus"):
                if q in real[0]:
                    row[f"{q}_data"] = float(np.mean([r[q][i] for r in real]))
                    row[f"{q}_theory"] = float(np.mean([t[q][i] for t in th]))
            rows.append(row)
    return rows


def runs_csv_text(result: dict[str, Any]) -> str:
    buf = io.StringIO()
    wr = csv.writer(buf)
    wr.writerow(["eps", "seed", "alpha", "R", "b", "E", "S"])
    for r in result["runs"]:
        for row in zip(r["alpha"], r["R"], r["b"], r["E"], r["S"]):
            wr.writerow([r["eps"], r["seed"], *(f"{v:.6g}" for v in row)])
    return buf.getvalue()


def format_table(rows) -> str:
    """The side-by-side table: (a) isotropic ODE, (b) structured theory, (c) MC, (d) data (mean ± se)."""
    lines = [f"{'eps':>4} {'alpha':>6} | {'E iso':>6} {'E th':>6} {'E MC':>15} {'E data':>15} | "
             f"{'S iso':>6} {'S th':>6} {'S MC':>15} {'S data':>15}   (MC: (theory from the MC starts) mean±se)"]
    for r in rows:
        cells = []
        for q in ("E", "S"):
            mc = f"{r[q + '_mc']:.4f}±{r[q + '_mc_se']:.4f}" if q + "_mc" in r else "-"
            if q + "_theory_mc_starts" in r:
                mc = f"({r[q + '_theory_mc_starts']:.4f}) " + mc
            cells.append(f"{r[q + '_iso_ode']:6.4f} {r[q + '_theory']:6.4f} {mc:>15} "
                         f"{r[q + '_data']:.4f}±{r[q + '_data_se']:.4f}")
        lines.append(f"{r['eps']:4g} {r['alpha']:6g} | {cells[0]} | {cells[1]}")
    return "\n".join(lines)


def markdown_table(rows) -> str:
    """The side-by-side table as markdown: per (eps, alpha), E and S from (a) the isotropic ODE (variances
    along B), (b) the structured theory (mean over the seeds' own w(0)), (c) the Monte Carlo of the fitted
    mixture (mean ± se; in brackets the theory from the Monte Carlo's own starts), (d) the data (mean ± se)."""
    out = ["| eps | alpha | E (a) iso | E (b) theory | E (c) MC [theory, same starts] | E (d) data | "
           "S (a) iso | S (b) theory | S (c) MC [theory, same starts] | S (d) data |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r['eps']:g}", f"{r['alpha']:g}"]
        for q in ("E", "S"):
            mc = (f"{r[q + '_mc']:.4f} ± {r[q + '_mc_se']:.4f} [{r.get(q + '_theory_mc_starts', float('nan')):.4f}]"
                  if q + "_mc" in r else "–")
            cells += [f"{r[q + '_iso_ode']:.4f}", f"{r[q + '_theory']:.4f}", mc,
                      f"{r[q + '_data']:.4f} ± {r[q + '_data_se']:.4f}"]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)
