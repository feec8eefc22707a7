"""Figures of the soft committee machine: R, Q, b, E, S over alpha, standard vs adversarial training, ODE
curves with Monte Carlo points (N-dimensional SGD with exact PGD), for the talk's data (K = 2) and xor (K = 4,
the plateau and the specialisation of the hidden units)."""

from __future__ import annotations

import numpy as np

from simulate.committee import integrate
from simulate.mc_committee import table_cases
from theory.committee import CommitteeParams

from .core import MEASURED, PALETTE, FigureSpec, register, series_colors


def _mc_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("numba") is not None


def _params(preset: str):
    def params(quick: bool) -> dict:
        cases = {k: p.as_dict() for k, p in table_cases().items() if k.startswith(preset)}
        return {"preset": preset, "cases": cases, "eps_test": 1.0 if preset == "talk" else 0.3,
                "alpha_max": 40.0 if quick else 200.0, "n_alpha": 21 if quick else 81, "error_every": 4,
                "mc_available": _mc_available(),
                "mc": {"N": 200 if quick else 1000, "replicas": 2 if quick else 8, "seed": 2026,
                       "n_test": 500 if quick else 2000,
                       "alphas": [0, 10, 20, 40] if quick else [0, 10, 25, 50, 100, 150, 200]}}
    return params


def _compute(params: dict) -> dict:
    alphas = np.linspace(0.0, params["alpha_max"], params["n_alpha"])
    out = {"alpha": alphas}
    for name, pd in params["cases"].items():
        p = CommitteeParams(**pd)
        traj = integrate(p, alphas, eps_test=params["eps_test"], error_alphas=alphas[::params["error_every"]])
        for q, s in traj.series().items():
            out[f"{name}/{q}"] = s
        if params["mc_available"]:
            from simulate.mc_committee import run_committee_mc

            mc = params["mc"]
            al = [a for a in mc["alphas"] if a <= params["alpha_max"]]
            res = run_committee_mc(p, mc["N"], mc["replicas"], al, mc["seed"], eps_test=params["eps_test"],
                                   n_test=mc["n_test"])
            out[f"{name}/mc_alpha"] = res.alpha
            for q in res.quantities:
                out[f"{name}/mc_{q}_mean"] = res.mean(q)
                out[f"{name}/mc_{q}_se"] = res.se(q)
    return out


def _plot(data: dict, params: dict):
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    cases = list(params["cases"])
    p0 = CommitteeParams(**params["cases"][cases[0]])
    K, D = p0.K, p0.D
    groups = [("overlaps R[k, d] = w_k . B_d", [f"R[{k + 1},{d + 1}]" for k in range(K) for d in range(D)]),
              ("overlaps Q[k, l] = w_k . w_l (k < l)",
               [f"Q[{k + 1},{l + 1}]" for k in range(K) for l in range(k + 1, K)]),
              ("biases b[k]", [f"b[{k + 1}]" for k in range(K)]),
              (f"test error E, adversarial error S (eps_test = {params['eps_test']:g})", ["E", "S"])]
    fig, axes = plt.subplots(len(cases), 4, figsize=(17, 3.7 * len(cases) + 1.2), constrained_layout=True,
                             squeeze=False)
    a = data["alpha"]
    mc = params["mc"]
    for row, case in enumerate(cases):
        kind = "standard" if case.endswith("standard") else "adversarial"
        for col, (title, names) in enumerate(groups):
            ax = axes[row, col]
            colors = [PALETTE["E"], PALETTE["S"]] if names == ["E", "S"] else series_colors(len(names))
            for j, n in enumerate(names):
                y = data[f"{case}/{n}"]
                ok = np.isfinite(y)
                ax.plot(a[ok], y[ok], "-", color=colors[j], lw=1.3, label=n)
                if f"{case}/mc_{n}_mean" in data:
                    ax.errorbar(data[f"{case}/mc_alpha"], data[f"{case}/mc_{n}_mean"], yerr=data[f"{case}/mc_{n}_se"],
                                color=colors[j], **MEASURED)
            ax.set_title(title, fontsize=9)
            if col == 0:
                ax.set_ylabel(f"{kind} training\n(eps = {CommitteeParams(**params['cases'][case]).eps:g})")
            if row == len(cases) - 1:
                ax.set_xlabel(r"$\alpha$ = steps/N")
                # the components' legend under each column, outside the data
                handles = [Line2D([], [], color=colors[j], lw=1.5, label=n) for j, n in enumerate(names)]
                if names == ["E", "S"]:
                    handles = [Line2D([], [], color=colors[0], lw=1.5, label="E (clean)"),
                               Line2D([], [], color=colors[1], lw=1.5, label=f"S (PGD, eps = {params['eps_test']:g})")]
                ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=4, fontsize=7,
                          frameon=False)
    style = [Line2D([], [], color="k", lw=1.3, label="ODE (N -> infinity)")]
    if any(k.endswith("_mean") for k in data):
        style.append(Line2D([], [], color="k", marker="o", ms=3.5, ls="",
                            label=f"Monte Carlo: N = {mc['N']}, mean ± s.e. of {mc['replicas']} runs, exact PGD in "
                                  "N dimensions"))
    fig.legend(handles=style, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    what = ("the talk's data (prior 0.7, rho 2)" if params["preset"] == "talk" else
            "the xor mixture (four clusters, no linear classifier beats chance)")
    fig.suptitle(f"Two-layer soft committee machine, K = {K} hidden units, on {what}: standard (top) vs "
                 f"adversarial (bottom) training", fontsize=11)
    return fig


for _preset, _desc in (("talk", "committee machine K=2 on the talk's data (prior 0.7): R, Q, b, E, S, standard vs "
                                "adversarial, ODE and Monte Carlo"),
                       ("xor", "committee machine K=4 on xor: plateau and specialisation of the hidden units, "
                               "standard vs adversarial, ODE and Monte Carlo")):
    register(FigureSpec(f"committee_{_preset}", _desc, _params(_preset), _compute, _plot))


# ---------------------------------------------------------------------------------------------------
# The plateau against the training budget: a sweep of the committee engine (simulate.sweep)
# ---------------------------------------------------------------------------------------------------
def _plateau_params(quick: bool) -> dict:
    """The xor case of the physics tables (K = 4); --quick: K = 2, two budgets, alpha <= 40 (the code path, in
    seconds: the K = 4 error integrals take seconds each)."""
    base = table_cases()["xor-K4-standard"]
    if quick:
        base = base.replace(K=2)
    return {"base": base.as_dict(), "eps_test": 0.3, "plateau_E": 0.4,
            "eps": [0.0, 0.3] if quick else [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
            "eta_w": [0.4] if quick else [0.2],
            "alpha_max": 40.0 if quick else 400.0, "alpha_step": 20.0 if quick else 25.0}


def _plateau_compute(params: dict) -> dict:
    import json

    from simulate.sweep import Grid, run_sweep

    alphas = np.arange(params["alpha_step"], params["alpha_max"] + 0.5 * params["alpha_step"], params["alpha_step"])
    fixed = {k: (json.dumps(v) if k in ("R0", "Q0", "b0", "v0") else v) for k, v in params["base"].items()
             if k not in ("eps", "eta_w")}
    grid = Grid((("eta_w", tuple(params["eta_w"])), ("eps", tuple(params["eps"]))), fixed)
    ds, _ = run_sweep("committee", grid, {"alphas": list(alphas), "eps_test": params["eps_test"],
                                          "plateau_E": params["plateau_E"]}, progress=False)
    return {"alpha": alphas, "eps": np.asarray(params["eps"]), "eta_w": np.asarray(params["eta_w"]),
            "E": ds["E"].values, "S": ds["S"].values, "Rmax": ds["Rmax"].values,
            "alpha_plateau_end": ds["alpha_plateau_end"].values}


def _plateau_plot(data: dict, params: dict):
    import matplotlib.pyplot as plt

    eps, etas, a = data["eps"], data["eta_w"], data["alpha"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), constrained_layout=True)
    ax = axes[0]
    colors = series_colors(len(etas))
    top = params["alpha_max"]
    for j, eta in enumerate(etas):
        end = data["alpha_plateau_end"][j]
        ok = np.isfinite(end)
        ax.plot(eps[ok], end[ok], "o-", color=colors[j], lw=1.4, ms=5, label=f"eta_w = {eta:g}: E < "
                f"{params['plateau_E']:g} first at this alpha")
        if np.any(~ok):
            ax.plot(eps[~ok], np.full((~ok).sum(), top), "^", color=colors[j], ms=8, mfc="none",
                    label=f"eta_w = {eta:g}: still on the plateau at alpha = {top:g}")
    ax.set_xlabel("training budget eps (FGSM-l2)")
    ax.set_ylabel(r"end of the plateau: first $\alpha$ with E < " + f"{params['plateau_E']:g}")
    ax.set_ylim(0, top * 1.08)
    ax.set_title("length of the plateau against the training budget", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, frameon=False)
    ax = axes[1]
    im = ax.pcolormesh(a, eps, data["E"][0], shading="nearest", cmap="viridis", vmin=0.0, vmax=0.5)
    ax.contour(a, eps, data["E"][0], levels=[params["plateau_E"]], colors="w", linewidths=1.2)
    ax.set_xlabel(r"$\alpha$ = steps/N")
    ax.set_ylabel("training budget eps")
    ax.set_title(f"test error E(alpha, eps) at eta_w = {etas[0]:g} (white: E = {params['plateau_E']:g})", fontsize=10)
    fig.colorbar(im, ax=ax, label="E")
    p = CommitteeParams(**params["base"])
    fig.suptitle(f"Soft committee machine on xor, K = {p.K}: end of the plateau against the training budget\n"
                 f"(ODE through the committee sweep engine; eta_b = {p.eta_b:g}, b0 = {p.b0[0]:g}, "
                 f"alpha on a grid of {params['alpha_step']:g})", fontsize=11)
    return fig


register(FigureSpec("committee_plateau", "committee machine K=4 on xor: end of the plateau against the training "
                    "budget eps, a sweep of the committee engine", _plateau_params, _plateau_compute, _plateau_plot))
