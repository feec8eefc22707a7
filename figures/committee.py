"""Figures of the soft committee machine: R, Q, b, E, S over alpha, standard vs adversarial training, ODE
curves with Monte Carlo points (N-dimensional SGD with exact PGD), for the talk's data (K = 2) and xor (K = 4,
the plateau and the specialisation of the hidden units)."""

from __future__ import annotations

import numpy as np

from simulate.committee import integrate
from simulate.mc_committee import table_cases
from theory.committee import CommitteeParams

from .core import FigureSpec, register


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

    cases = list(params["cases"])
    p0 = CommitteeParams(**params["cases"][cases[0]])
    K, D = p0.K, p0.D
    groups = [("R", [f"R[{k + 1},{d + 1}]" for k in range(K) for d in range(D)]),
              ("Q (k < l)", [f"Q[{k + 1},{l + 1}]" for k in range(K) for l in range(k + 1, K)]),
              ("b", [f"b[{k + 1}]" for k in range(K)]), ("E and S", ["E", "S"])]
    fig, axes = plt.subplots(len(cases), 4, figsize=(17, 4 * len(cases)), constrained_layout=True, squeeze=False)
    a = data["alpha"]
    for row, case in enumerate(cases):
        for col, (title, names) in enumerate(groups):
            ax = axes[row, col]
            for j, n in enumerate(names):
                y = data[f"{case}/{n}"]
                ok = np.isfinite(y)
                ax.plot(a[ok], y[ok], "-", color=f"C{j % 10}", lw=1.2, label=n)
                if f"{case}/mc_{n}_mean" in data:
                    ax.errorbar(data[f"{case}/mc_alpha"], data[f"{case}/mc_{n}_mean"], yerr=data[f"{case}/mc_{n}_se"],
                                fmt="o", ms=3, color=f"C{j % 10}", capsize=2)
            ax.set_title(f"{case}: {title}" + (f" (S at eps={params['eps_test']:g})" if title.startswith("E") else ""),
                         fontsize=9)
            ax.legend(fontsize=6, ncol=2)
            if row == len(cases) - 1:
                ax.set_xlabel(r"$\alpha$ = steps/N")
    fig.suptitle(f"Soft committee machine, preset {params['preset']}, K = {K}: ODE (lines) and Monte Carlo "
                 f"(points, N = {params['mc']['N']}, {params['mc']['replicas']} replicas, exact PGD in N dimensions)")
    return fig


for _preset, _desc in (("talk", "committee machine K=2 on the talk's data (prior 0.7): R, Q, b, E, S, standard vs "
                                "adversarial, ODE and Monte Carlo"),
                       ("xor", "committee machine K=4 on xor: plateau and specialisation of the hidden units, "
                               "standard vs adversarial, ODE and Monte Carlo")):
    register(FigureSpec(f"committee_{_preset}", _desc, _params(_preset), _compute, _plot))
