"""Optimal adversarial-training protocols for scenario 2 of the talk (prior 0.7, rho 2): the optimal
eps(alpha) beside the best constant eps and standard training, their learning curves, the switching
function of Pontryagin's principle, and the objective by the ODE and the Monte Carlo (mean ± SE).

Data: results/protocol_s2_a50.json and results/protocol_s2_a200.json (python -m simulate.protocol, see
docs/protocols.md); --quick solves a small problem (alpha_F = 20, 5 pieces, no Monte Carlo) instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .core import MEASURED, PALETTE, FigureSpec, Unavailable, legend_below, register

RESULTS = Path(__file__).resolve().parent.parent / "results"
FILES = {"50": "protocol_s2_a50.json", "200": "protocol_s2_a200.json"}
SCHEDULES = ("optimal", "best_constant", "standard")


def protocol_params(quick: bool) -> dict:
    if quick:
        return {"quick": True, "alpha_F": [20.0], "segments": 4}
    keys = {}
    for k, name in FILES.items():
        path = RESULTS / name
        if not path.exists():
            raise Unavailable(f"needs {path} (python -m simulate.protocol ... --out {path}, docs/protocols.md)")
        keys[k] = json.loads(path.read_text())["provenance"]["created"]
    return {"quick": False, "files": FILES, "created": keys}


def _flatten(tag: str, res: dict, data: dict) -> None:
    data[f"{tag}/edges"] = np.asarray(res["problem"]["edges"], float)
    data[f"{tag}/u"] = np.asarray(res["schedule"], float)
    data[f"{tag}/best_constant_eps"] = np.array(res["best_constant_eps"])
    for s in SCHEDULES:
        tr = res["trajectories"][s]
        for q in ("alpha", "E", "S", "R", "b"):
            data[f"{tag}/{s}/{q}"] = np.asarray(tr[q], float)
        data[f"{tag}/{s}/J_ode"] = np.array(res["objective_ode"][s])
        if "mc" in res:
            data[f"{tag}/{s}/J_mc"] = np.array(res["mc"]["objective"][s]["mean"])
            data[f"{tag}/{s}/J_mc_se"] = np.array(res["mc"]["objective"][s]["se"])
    pm = res["pontryagin"]
    for q in ("alpha", "sigma", "pR", "pb", "u"):
        data[f"{tag}/pmp/{q}"] = np.asarray(pm[q], float)
    data[f"{tag}/eps_max"] = np.array(res["problem"]["eps_max"])
    data[f"{tag}/lam"] = np.array(res["problem"]["lam"])
    data[f"{tag}/eps_test"] = np.array(res["problem"]["eps_test"])


def protocol_compute(params: dict) -> dict:
    data: dict = {}
    if params["quick"]:
        from simulate.protocol import Problem, solve
        from theory import Params

        for aF in params["alpha_F"]:
            prob = Problem(params=Params(rho=2.0, prior=0.7, eps=0.0), alpha_F=aF, segments=params["segments"],
                           lam=1.0)
            res = json.loads(json.dumps(solve(prob, None, log=lambda s: None, scan=11), default=_jsonable))
            _flatten(f"{aF:g}", res, data)
        return data
    for tag, name in params["files"].items():
        res = json.loads((RESULTS / name).read_text())["result"]
        _flatten(tag, res, data)
    return data


def _jsonable(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(type(obj))


STYLES = {"optimal": "-", "best_constant": "--", "standard": ":"}
LABELS = {"optimal": "optimal schedule eps(alpha)", "best_constant": "best constant eps",
          "standard": "standard training (eps = 0)"}


def protocol_plot(data: dict, params: dict):
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    tags = sorted({k.split("/")[0] for k in data}, key=float)
    fig, axes = plt.subplots(len(tags), 5, figsize=(20, 3.9 * len(tags)), constrained_layout=True, squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 1, 0.8, 1]})
    colors = {"optimal": PALETTE["adversarial"], "best_constant": PALETTE["best_constant"],
              "standard": PALETTE["standard"]}
    has_mc = False
    for r, tag in enumerate(tags):
        edges, u = data[f"{tag}/edges"], data[f"{tag}/u"]
        ax = axes[r, 0]
        ax.stairs(u, edges, color=colors["optimal"], lw=2, baseline=None)
        ax.axhline(float(data[f"{tag}/best_constant_eps"]), color=colors["best_constant"], ls="--")
        ax.axhline(0.0, color=colors["standard"], ls=":")
        ax.set_ylim(-0.05, float(data[f"{tag}/eps_max"]) * 1.05)
        ax.set_ylabel(f"alpha_F = {tag}\ntraining budget eps")
        ax.set_title("the schedules", fontsize=10)
        for c, q in ((1, "S"), (2, "E")):
            ax = axes[r, c]
            for s in SCHEDULES:
                ax.plot(data[f"{tag}/{s}/alpha"], data[f"{tag}/{s}/{q}"], color=colors[s], ls=STYLES[s], lw=1.6)
            ax.set_title(("adversarial error S (eps_test = " + f"{float(data[f'{tag}/eps_test']):g})" if q == "S"
                          else "test error E") + " over training (ODE)", fontsize=10)
        # the objective at alpha_F: ODE (bars) and Monte Carlo (points, mean ± s.e.)
        ax = axes[r, 3]
        J = np.array([float(data[f"{tag}/{s}/J_ode"]) for s in SCHEDULES])
        x = np.arange(len(SCHEDULES))
        ax.bar(x, J, 0.6, color=[colors[s] for s in SCHEDULES], alpha=0.45)
        pad = 0.15 * (J.max() - J.min()) + 1e-3
        for k, s in enumerate(SCHEDULES):
            ax.text(x[k], J.min() - 0.5 * pad, f"{J[k]:.4f}", ha="center", va="center", fontsize=8)
            if f"{tag}/{s}/J_mc" in data:
                has_mc = True
                ax.errorbar(x[k], float(data[f"{tag}/{s}/J_mc"]), yerr=float(data[f"{tag}/{s}/J_mc_se"]),
                            color="k", **MEASURED)
        pad = 0.15 * (J.max() - J.min()) + 1e-3
        ax.set_ylim(J.min() - pad, J.max() + pad)
        ax.set_xticks(x, ["optimal", "best\nconstant", "standard"], fontsize=8)
        ax.set_title(f"objective J = S + {float(data[f'{tag}/lam']):g} E at alpha_F", fontsize=10)
        # Pontryagin's switching function
        ax = axes[r, 4]
        a, sig = data[f"{tag}/pmp/alpha"], data[f"{tag}/pmp/sigma"]
        piece = np.searchsorted(edges, a, side="right") - 1  # sigma jumps where eps does: one line per piece
        for k in np.unique(piece):
            sel = piece == k
            ax.plot(a[sel], sig[sel], color="k", lw=1)
        ax.axhline(0, color=PALETTE["bayes"], lw=0.5)
        at_max = data[f"{tag}/pmp/u"] >= float(data[f"{tag}/eps_max"]) - 1e-9
        ax.fill_between(a, 0, 1, where=at_max, transform=ax.get_xaxis_transform(), color=colors["optimal"],
                        alpha=0.12)
        lo, hi = float(np.min(sig)), float(np.max(sig))
        pad = 0.06 * (hi - lo or abs(hi) or 1.0)
        ax.set_ylim(lo - pad, hi + pad)  # the whole curve, spikes included
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        ax.set_title("Pontryagin: switching function sigma", fontsize=10)
        for ax in axes[r, [0, 1, 2, 4]]:
            ax.set_xlabel("alpha = steps/N")
    handles = [Line2D([], [], color=colors[s], lw=2, ls=STYLES[s], label=LABELS[s]) for s in SCHEDULES]
    if has_mc:
        handles.append(Line2D([], [], color="k", marker="o", ls="", ms=4,
                              label="Monte Carlo of J (reduced engine, N = 10^4, mean ± s.e.)"))
    handles += [Line2D([], [], color="k", lw=1, label="switching function sigma = p . df/deps (costate p)"),
                Patch(color=colors["optimal"], alpha=0.12, label="optimal eps at its bound eps_max")]
    legend_below(fig, handles, [h.get_label() for h in handles], ncol=3)
    mc_note = "; Monte Carlo (points) confirms the ODE objective" if has_mc else "; no Monte Carlo in this pass"
    fig.suptitle("Optimal budget schedules, scenario 2 (prior 0.7, rho 2, eta_w 0.04, eta_b 0.2): the optimal "
                 "schedule beats the best constant budget" + mc_note, fontsize=11)
    return fig


register(FigureSpec("protocol", "optimal eps(alpha) for scenario 2 vs best constant and standard training, ODE "
                    "and Monte Carlo, with the switching function", protocol_params, protocol_compute,
                    protocol_plot))
