"""Figure 6: the linear erf classifier trained online on MNIST 3 vs 7 beside the ODE of a fitted mixture.

Reads ``results/online_mnist37.json`` written by ``python -m empirical.online`` (the measured curves, the
mixture parameters estimated from the same data, and the ODE solutions for them); the ODE curves are
recomputed here from those parameters so the figure checks the file rather than copying it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from simulate.ode import integrate
from theory import Params

from .core import FigureSpec, Unavailable, register

RESULTS = Path(__file__).resolve().parent.parent / "results" / "online_mnist37.json"


def _load(path: Path) -> dict:
    if not path.exists():
        raise Unavailable(f"{path} is missing: run python -m empirical.online --out results/online_mnist37")
    return json.loads(path.read_text())


def bridge_params(quick: bool) -> dict:
    path = RESULTS
    d = _load(path)
    # the key changes with the results file, so new measurements are picked up
    return {"results": str(path), "created": d["provenance"].get("created"), "git_sha": d["provenance"].get("git_sha"),
            "n_alpha": 101 if quick else 401}


def bridge_compute(params: dict) -> dict:
    d = _load(Path(params["results"]))
    run_p, est = d["params"], d["estimated"]
    out = {}
    by_eps: dict[float, list] = {}
    for run in d["runs"]:
        by_eps.setdefault(float(run["eps"]), []).append(run)
    for eps, runs in sorted(by_eps.items()):
        alpha = np.asarray(runs[0]["alpha"], float)
        out[f"eps{eps:g}/alpha"] = alpha
        for q in ("E", "S", "R", "b"):
            vals = np.array([r[q] for r in runs], float)
            out[f"eps{eps:g}/{q}_mean"] = vals.mean(0)
            out[f"eps{eps:g}/{q}_se"] = vals.std(0, ddof=1) / np.sqrt(len(runs)) if len(runs) > 1 else 0 * alpha
        alphas = np.linspace(0.0, float(alpha[-1]), params["n_alpha"])
        out[f"eps{eps:g}/ode_alpha"] = alphas
        for label, (v1, v2) in (("per_coordinate", (est["v1"], est["v2"])),
                                ("along_B", (est["v1_along_B"], est["v2_along_B"]))):
            p = Params(rho=est["rho"], prior=est["prior"], v1=v1, v2=v2, eta_w=run_p["eta_w"],
                       eta_b=run_p["eta_b"], eps=eps, erf_scale=run_p["erf_scale"])
            traj = integrate(p, alphas, eps_test=run_p["eps_test"])
            out[f"eps{eps:g}/ode_{label}_E"] = traj.E
            out[f"eps{eps:g}/ode_{label}_S"] = traj.S
    out["eps_values"] = np.array(sorted(by_eps))
    out["eps_test"] = np.array(run_p["eps_test"])
    return out


def bridge_plot(data: dict, params: dict):
    import matplotlib.pyplot as plt

    eps_values = data["eps_values"]
    fig, axes = plt.subplots(1, len(eps_values), figsize=(5.5 * len(eps_values), 4.2), constrained_layout=True,
                             sharey=True)
    for ax, eps in zip(np.atleast_1d(axes), eps_values):
        k = f"eps{eps:g}"
        a = data[f"{k}/alpha"]
        for q, color, label in (("E", "C0", "test error E"), ("S", "C3", f"adversarial error S (eps={float(data['eps_test']):g})")):
            ax.fill_between(a, data[f"{k}/{q}_mean"] - data[f"{k}/{q}_se"], data[f"{k}/{q}_mean"] + data[f"{k}/{q}_se"],
                            color=color, alpha=0.25)
            ax.plot(a, data[f"{k}/{q}_mean"], color=color, label=f"MNIST 3 vs 7: {label}")
            ax.plot(data[f"{k}/ode_alpha"], data[f"{k}/ode_along_B_{q}"], "--", color=color, lw=1,
                    label=f"ODE, variances along B: {q}")
            ax.plot(data[f"{k}/ode_alpha"], data[f"{k}/ode_per_coordinate_{q}"], ":", color=color, lw=1,
                    label=f"ODE, variance per coordinate: {q}")
        ax.set_title("standard training" if eps == 0 else f"adversarial training, eps = {eps:g}", fontsize=10)
        ax.set_xlabel(r"$\alpha$ = steps/N (N = 784)")
    np.atleast_1d(axes)[0].set_ylabel("error")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.suptitle("Online linear erf classifier on MNIST 3 vs 7 (mean ± s.e. over seeds)\n"
                 "beside the ODE of the Gaussian mixture fitted to the same data", fontsize=10)
    return fig


register(FigureSpec("mnist_bridge", "linear erf classifier trained online on MNIST 3 vs 7 beside the ODE",
                    bridge_params, bridge_compute, bridge_plot))
