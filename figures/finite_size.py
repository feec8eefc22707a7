"""Figure 3: finite-size scaling of the Monte Carlo around the ODE (deviation of the mean, spread)."""

from __future__ import annotations

import numpy as np

from simulate.ode import integrate
from simulate.scenarios import EPS_TEST, TALK_SCENARIOS

from .core import FigureSpec, register


def finite_size_params(quick: bool) -> dict:
    return {"scenario": "scenario2-adversarial", "params": TALK_SCENARIOS["scenario2-adversarial"].as_dict(),
            "Ns": [100, 400, 1600] if quick else [125, 250, 500, 1000, 2000, 4000, 8000, 16000],
            "replicas": 16 if quick else 64, "alphas": [0.0, 10.0, 50.0, 200.0], "seed": 7,
            "engine": "reduced", "eps_test": EPS_TEST}


def finite_size_compute(params: dict) -> dict:
    from simulate.mc import run_mc
    from theory import Params

    p = Params(**params["params"])
    alphas = np.asarray(params["alphas"], float)
    ode = integrate(p, alphas, eps_test=params["eps_test"])
    out = {"N": np.asarray(params["Ns"], float), "alpha": alphas}
    for q in ("R", "b", "E", "S"):
        out[f"ode_{q}"] = getattr(ode, q)
        dev, se, spread = [], [], []
        for k, N in enumerate(params["Ns"]):
            if q == "R":  # one run per N serves all four quantities
                res = run_mc(p, N=N, replicas=params["replicas"], alphas=alphas, seed=params["seed"] + k,
                             engine=params["engine"], eps_test=params["eps_test"], progress=False)
                out[f"_res{k}"] = np.stack([res.values(x) for x in ("R", "b", "E", "S")])
            vals = out[f"_res{k}"][("R", "b", "E", "S").index(q)]
            dev.append(vals.mean(axis=1) - getattr(ode, q))
            se.append(vals.std(axis=1, ddof=1) / np.sqrt(vals.shape[1]))
            spread.append(vals.std(axis=1, ddof=1))
        out[f"dev_{q}"], out[f"se_{q}"], out[f"spread_{q}"] = np.array(dev), np.array(se), np.array(spread)
    return {k: v for k, v in out.items() if not k.startswith("_")}


def finite_size_plot(data: dict, params: dict):
    import matplotlib.pyplot as plt

    N = data["N"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.0), constrained_layout=True)
    for j, a in enumerate(data["alpha"]):
        if a == 0:
            continue
        axes[0].errorbar(N * (1 + 0.03 * j), data["dev_R"][:, j], yerr=data["se_R"][:, j], fmt="o-", ms=3,
                         capsize=2, label=f"R, alpha={a:g}")
        axes[1].loglog(N, data["spread_R"][:, j], "o-", ms=3, label=f"R, alpha={a:g}")
        axes[1].loglog(N, data["spread_b"][:, j], "s--", ms=3, label=f"b, alpha={a:g}")
    axes[0].axhline(0, color="k", lw=0.8)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("N")
    axes[0].set_ylabel("MC mean - ODE (± standard error)")
    axes[0].set_title("deviation of the replica mean from the ODE", fontsize=10)
    ref = data["spread_R"][0, -1] * np.sqrt(N[0] / N)
    axes[1].loglog(N, ref, "k:", label=r"$\propto N^{-1/2}$")
    axes[1].set_xlabel("N")
    axes[1].set_ylabel("standard deviation across replicas")
    axes[1].set_title("fluctuations shrink like 1/sqrt(N)", fontsize=10)
    for ax, ncol in zip(axes, (3, 3)):
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=ncol, fontsize=7, frameon=False)
    fig.suptitle(f"Finite-size scaling, {params['scenario']} ({params['replicas']} replicas per N, "
                 f"{params['engine']} engine)")
    return fig


register(FigureSpec("finite_size", "deviation and spread of the Monte Carlo around the ODE versus N",
                    finite_size_params, finite_size_compute, finite_size_plot, requires=("numba",)))
