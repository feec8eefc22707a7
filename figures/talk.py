"""Figures of the source talk: learning curves (1), robustness curves (2), phase portraits (4)."""

from __future__ import annotations

import numpy as np

from simulate.ode import integrate
from simulate.scenarios import EPS_TEST, TALK_N, TALK_SCENARIOS
from theory import (Params, adversarial_error, bayes_error, best_linear_adversarial_error, drift,
                    fixed_points)

from .core import MEASURED, PALETTE, FigureSpec, legend_below, register, series_colors

NAMES = list(TALK_SCENARIOS)


# ----------------------------------------------------------------------------------------------------
# 1. learning curves of the two scenarios, ODE with Monte Carlo points
# ----------------------------------------------------------------------------------------------------
def _mc_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("numba") is not None


def scenarios_params(quick: bool) -> dict:
    return {"mc_available": _mc_available(), "scenarios": {k: p.as_dict() for k, p in TALK_SCENARIOS.items()}, "eps_test": EPS_TEST,
            "alpha_max": 200.0, "n_alpha": 101 if quick else 401,
            "mc": {"N": 200 if quick else TALK_N, "replicas": 8 if quick else 32,
                   "alphas": [0, 10, 25, 50, 100, 150, 200] if not quick else [0, 10, 50, 100, 200],
                   "seed": 2026, "engine": "full"}}


def _mc_points(p: Params, mc: dict, eps_test: float):
    """Monte Carlo mean and standard error of R, b, E, S, or None when the engine is not installed."""
    if not _mc_available():
        return None
    from simulate.mc import run_mc

    res = run_mc(p, N=mc["N"], replicas=mc["replicas"], alphas=np.asarray(mc["alphas"], float),
                 seed=mc["seed"], engine=mc["engine"], eps_test=eps_test, progress=False)
    return res


def scenarios_compute(params: dict) -> dict:
    alphas = np.linspace(0.0, params["alpha_max"], params["n_alpha"])
    out = {"alpha": alphas, "mc_alpha": np.asarray(params["mc"]["alphas"], float)}
    for name, pd in params["scenarios"].items():
        p = Params(**pd)
        traj = integrate(p, alphas, eps_test=params["eps_test"])
        for q in ("R", "b", "E", "S"):
            out[f"{name}/{q}"] = getattr(traj, q)
        mc = _mc_points(p, params["mc"], params["eps_test"])
        if mc is not None:
            for q in ("R", "b", "E", "S"):
                out[f"{name}/mc_{q}_mean"] = np.asarray(mc[q]["mean"])
                out[f"{name}/mc_{q}_se"] = np.asarray(mc[q]["se"])
    return out


def scenarios_plot(data: dict, params: dict):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(15, 6.8), constrained_layout=True, sharex=True)
    labels = {"R": "overlap R with the cluster axis", "b": "bias b", "E": "test error E",
              "S": f"adversarial error S (eps_test = {params['eps_test']:g})"}
    mc = params["mc"]
    for row, scen in enumerate(("scenario1", "scenario2")):
        prior = params["scenarios"][f"{scen}-standard"]["prior"]
        for col, q in enumerate(("R", "b", "E", "S")):
            ax = axes[row, col]
            for kind, style in (("standard", "--"), ("adversarial", "-")):
                name = f"{scen}-{kind}"
                color = PALETTE[kind]
                ax.plot(data["alpha"], data[f"{name}/{q}"], style, color=color, lw=1.6,
                        label=f"{kind} training, ODE (N -> infinity)")
                if f"{name}/mc_{q}_mean" in data:
                    ax.errorbar(data["mc_alpha"], data[f"{name}/mc_{q}_mean"], yerr=data[f"{name}/mc_{q}_se"],
                                color=color, label=f"{kind} training, Monte Carlo (N = {mc['N']}, mean ± s.e. of "
                                                   f"{mc['replicas']} runs)", **MEASURED)
            extra = " (0 by symmetry; the points are noise)" if q == "b" and prior == 0.5 else ""
            ax.set_title(f"prior {prior:g}: {labels[q]}{extra}", fontsize=9)
            if row == 1:
                ax.set_xlabel(r"$\alpha$ = steps/N")
    legend_below(fig, ncol=2)
    fig.suptitle("Learning curves of online training in the two-cluster mixture (rho = 2, v = 1, eta_w = 0.04, "
                 "eta_b = 0.2): standard vs adversarial training (eps = 1)", fontsize=11)
    return fig


register(FigureSpec("scenarios", "R, b, E, S over alpha for the talk's two scenarios, ODE and Monte Carlo",
                    scenarios_params, scenarios_compute, scenarios_plot))


# ----------------------------------------------------------------------------------------------------
# 2. robustness curves S(eps) at the end of training
# ----------------------------------------------------------------------------------------------------
def robustness_params(quick: bool) -> dict:
    return {"scenarios": {k: p.as_dict() for k, p in TALK_SCENARIOS.items()}, "alpha_end": 200.0,
            "eps_grid": np.linspace(0.0, 2.0, 21 if quick else 101).tolist()}


def robustness_compute(params: dict) -> dict:
    eps = np.asarray(params["eps_grid"])
    out = {"eps": eps}
    for name, pd in params["scenarios"].items():
        p = Params(**pd)
        traj = integrate(p, [0.0, params["alpha_end"]])
        out[f"{name}/S"] = adversarial_error(traj.R[-1], traj.b[-1], eps, p)
    for prior in (0.5, 0.7):
        p = Params(prior=prior)
        out[f"prior{prior}/best"] = np.array([best_linear_adversarial_error(float(e), p)[0] for e in eps])
        out[f"prior{prior}/bayes"] = np.array(bayes_error(p))
    return out


def robustness_plot(data: dict, params: dict):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), constrained_layout=True, sharey=True)
    for ax, (scen, prior) in zip(axes, (("scenario1", 0.5), ("scenario2", 0.7))):
        std, adv = data[f"{scen}-standard/S"], data[f"{scen}-adversarial/S"]
        # standard training drawn wide and light underneath, so that it stays visible where the two coincide
        ax.plot(data["eps"], std, "-", color=PALETTE["standard"], lw=5, alpha=0.35, label="standard training")
        ax.plot(data["eps"], adv, "--", color=PALETTE["adversarial"], lw=1.6, label="adversarial training (eps = 1)")
        ax.plot(data["eps"], data[f"prior{prior}/best"], ":", color=PALETTE["reference"], lw=1.4,
                label="best unit-norm linear classifier at each eps")
        ax.axhline(float(data[f"prior{prior}/bayes"]), color=PALETTE["bayes"], lw=0.9, label="Bayes error (clean)")
        gap = float(np.max(np.abs(std - adv)))
        if gap < 1e-2:
            ax.text(0.03, 0.97, f"equal priors: both trainings reach the same state\n(R -> 1, b = 0); the "
                                f"curves coincide (max gap {gap:.0e})", transform=ax.transAxes, va="top",
                    fontsize=8)
        ax.set_title(f"prior {prior:g}: S(eps) of the state at alpha = {params['alpha_end']:g} (ODE)", fontsize=10)
        ax.set_xlabel("test budget eps")
    axes[0].set_ylabel("adversarial error S(eps)")
    legend_below(fig, ncol=4)
    fig.suptitle("Robustness after training (rho = 2, v = 1): adversarial training trades clean error for robustness "
                 "only when the priors differ", fontsize=11)
    return fig


register(FigureSpec("robustness", "robustness curves S(eps) after training, with the best linear and Bayes errors",
                    robustness_params, robustness_compute, robustness_plot))


# ----------------------------------------------------------------------------------------------------
# 4. phase portraits with fixed points, and the variants
# ----------------------------------------------------------------------------------------------------
VARIANTS = {
    "fixed eps = 1": dict(),
    "eps ~ uniform[0, 2]": dict(eps_law="uniform"),
    "non-robust examples only": dict(non_robust_only=True),
}


def phase_params(quick: bool) -> dict:
    return {"base": Params(prior=0.7).as_dict(), "variants": VARIANTS, "n_grid": 15 if quick else 31,
            "b_range": [-5.0, 1.5], "alpha_max": 400.0, "n_alpha": 81 if quick else 401,
            "starts": [[0.0, 0.0], [-0.5, 0.5], [0.5, -4.0], [-0.9, -2.0]][: 2 if quick else 4]}


def phase_compute(params: dict) -> dict:
    base = Params(**params["base"])
    Rg = np.linspace(-0.99, 0.99, params["n_grid"])
    bg = np.linspace(*params["b_range"], params["n_grid"])
    RR, BB = np.meshgrid(Rg, bg)
    alphas = np.linspace(0, params["alpha_max"], params["n_alpha"])
    out = {"R_grid": Rg, "b_grid": bg}
    for i, (label, change) in enumerate(params["variants"].items()):
        p = base.replace(**change)
        kw = dict(rho=p.rho, prior=p.prior, v1=p.v1, v2=p.v2, eta_w=p.eta_w, eta_b=p.eta_b, eps=p.eps,
                  eps_law=p.eps_law, non_robust_only=p.non_robust_only, loss=p.loss, erf_scale=p.erf_scale)
        dR, db = drift(RR, BB, **kw)
        out[f"v{i}/dR"], out[f"v{i}/db"] = dR, db
        ends = []
        for j, (R0, b0) in enumerate(params["starts"]):
            traj = integrate(p.replace(R0=R0, b0=b0), alphas, rtol=1e-8, atol=1e-10)
            out[f"v{i}/traj{j}"] = np.stack([traj.R, traj.b])
            ends.append((traj.R[-1], traj.b[-1]))
        starts = ends + [(R0, b0) for R0 in (-0.9, 0.0, 0.9) for b0 in (-2.0, 0.0)]
        fps = fixed_points(p, starts=starts)
        out[f"v{i}/fp"] = np.array([[fp.R, fp.b, float(fp.stable)] for fp in fps]).reshape(-1, 3)
    return out


def phase_plot(data: dict, params: dict):
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    labels = list(params["variants"])
    colors = series_colors(len(params["starts"]))
    fig, axes = plt.subplots(1, len(labels), figsize=(5 * len(labels), 4.9), constrained_layout=True,
                             sharey=True)
    for i, (ax, label) in enumerate(zip(np.atleast_1d(axes), labels)):
        ax.streamplot(data["R_grid"], data["b_grid"], data[f"v{i}/dR"], data[f"v{i}/db"], density=0.8,
                      color="0.75", linewidth=0.6)
        for j in range(len(params["starts"])):
            tr = data[f"v{i}/traj{j}"]
            ax.plot(tr[0], tr[1], "-", color=colors[j], lw=1.4)
            ax.plot(tr[0, 0], tr[1, 0], "o", color=colors[j], ms=4)
            ax.plot(tr[0, -1], tr[1, -1], "s", color=colors[j], ms=4, mfc="white", clip_on=False, zorder=4)
        for R, b, stable in data[f"v{i}/fp"]:
            ax.plot(R, b, "*" if stable else "X", color="k", ms=13 if stable else 9, clip_on=False, zorder=5)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("R (overlap with the cluster axis)")
        ax.set_xlim(-1.0, 1.0)
        ax.set_ylim(*params["b_range"])
    np.atleast_1d(axes)[0].set_ylabel("b (bias)")
    handles = [Line2D([], [], color=colors[j], marker="o", ms=4, label=f"trajectory from (R, b) = ({R0:g}, {b0:g})")
               for j, (R0, b0) in enumerate(params["starts"])]
    handles += [Line2D([], [], ls="", marker="s", mfc="white", color="k", ms=4,
                       label=f"where it is at alpha = {params['alpha_max']:g}"),
                Line2D([], [], ls="", marker="*", color="k", ms=11, label="stable fixed point"),
                Line2D([], [], ls="", marker="X", color="k", ms=8, label="unstable fixed point"),
                Line2D([], [], color="0.75", label="flow of the ODE (dR/dalpha, db/dalpha)")]
    legend_below(fig, handles, [h.get_label() for h in handles], ncol=4)
    fig.suptitle(f"Phase portraits of (R, b) under adversarial training, prior {params['base']['prior']:g}, "
                 f"eps {params['base']['eps']:g}: flow, trajectories, fixed points; far below b = 0 the dynamics "
                 "are slow", fontsize=11)
    return fig


register(FigureSpec("phase", "phase portraits of (R, b) with fixed points, for fixed eps, random eps and "
                    "non-robust-only training", phase_params, phase_compute, phase_plot))
