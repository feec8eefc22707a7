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
              ("overlaps Q[k, l] = w_k . w_l (k < l)", [f"Q[{k + 1},{l + 1}]" for k in range(K) for l in range(k + 1, K)]),
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
