"""Figures of the multinorm family (l_inf / l_1 / l_2 / avg / max / SAT training of a linear erf classifier on
the Tramer-Boneh distribution) at d weak features: ``multinorm`` at the issue's parameters (a = 2, p0 = 0.9,
e = 4, eps1 = 2, eta_w = 0.2, eta_b = 0.1, w0 = 0.2), ``multinorm_set2`` at the family's second parameter set
(:data:`simulate.multinorm.endstates.SECOND_SET`).  Each in three parts:

(a) clean, l_inf, l_1 and union accuracy over alpha = steps/N for every scheme: the theory at the
    same d (theory.multinorm.solve) as lines, the Monte Carlo (simulate.multinorm.mc) as points with standard
    errors;
(b) the law rho(u, alpha) of the rescaled weak weights u_i = sqrt(d) w_i at a few alphas
    under adv_inf, avg and max (theory density as lines, the Monte Carlo histogram pooled over replicas as
    steps): the sparsification of the weak weights;
(c) where each scheme ends (alpha_max), in the plane of l_inf and l_1 accuracy, drawn on
    the static frontier of linear classifiers and the mutual-exclusivity bound of the ``tradeoffs`` figure
    (theory.tradeoff_lp at the same d, a, p0, budgets e/sqrt(d) and eps1).

Without theory.multinorm.solve (an older checkout) the figures show the Monte Carlo alone and say so.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np

from theory.multinorm import SCHEMES, MultinormParams

from .core import THREAT_COLORS, FigureSpec, legend_below, register

LAW_SCHEMES = ("adv_inf", "avg", "max")
ACC = (("acc_clean", "clean"), ("acc_inf", r"$\ell_\infty$"), ("acc_1", r"$\ell_1$"), ("acc_union", "union"))
MARKERS = {"acc_clean": "o", "acc_inf": "s", "acc_1": "^", "acc_union": "x"}
#: the project's threat colours (figures.core.THREAT_COLORS); union dashed and on top: it equals the lower of the
#: two robust accuracies, so a solid line would hide that one
COLORS = {"acc_clean": THREAT_COLORS["clean"], "acc_inf": THREAT_COLORS["linf"], "acc_1": THREAT_COLORS["l1"],
          "acc_union": THREAT_COLORS["union"]}
ERR_OF = {"acc_clean": "E", "acc_inf": "S_inf", "acc_1": "S_1", "acc_union": "union"}


def _theory_available() -> bool:
    try:
        from theory.multinorm import solve  # noqa: F401
    except ImportError:
        return False
    return True


def multinorm_params(quick: bool, base: MultinormParams | None = None) -> dict:
    return {"params": (base or MultinormParams()).as_dict(), "d": 200 if quick else 1000,
            "replicas": 4 if quick else 16, "seed": 2026, "alpha_max": 10.0 if quick else 50.0,
            "mc_alphas": [0.0, 2.0, 5.0, 10.0] if quick else [0.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0],
            "n_theory": 21 if quick else 101, "law_alphas": [0.0, 2.0, 10.0] if quick else [0.0, 5.0, 20.0, 50.0],
            "u_bins": [-4.0, 4.0, 41 if quick else 81],
            "frontier": {"n_theta": 41 if quick else 241, "n_psi": 21 if quick else 121, "n_tau": 1 if quick else 4},
            "theory_available": _theory_available(), "mc_available": importlib.util.find_spec("numba") is not None,
            # the quick pass solves the theory only where it takes seconds (the moment ODE of std and adv_2, the
            # finite volumes of adv_inf); the full pass every scheme
            "theory_schemes": ["std", "adv_inf", "adv_2"] if quick else list(SCHEMES)}


def multinorm_compute(params: dict) -> dict:
    """Per scheme: the Monte Carlo (mean and s.e. of w0, L1 and the four accuracies on mc_alphas, the pooled
    u-histograms at law_alphas) and the theory (same keys on a fine grid, rho(u) at law_alphas)."""
    base = MultinormParams(**params["params"])
    d = params["d"]
    out: dict[str, np.ndarray] = {}
    lo, hi, nb = params["u_bins"]
    bins = np.linspace(lo, hi, int(nb))
    out["u_bins"] = bins
    law_alphas = np.asarray(params["law_alphas"])
    mc_alphas = np.unique(np.concatenate([params["mc_alphas"], law_alphas]))
    th_alphas = np.unique(np.concatenate([np.linspace(0.0, params["alpha_max"], params["n_theory"]), law_alphas]))
    for k, s in enumerate(SCHEMES):
        p = base.replace(scheme=s)
        if params["mc_available"]:
            from simulate.multinorm.mc import run_multinorm_mc

            seed = int(np.random.SeedSequence([params["seed"], k]).generate_state(1, np.uint64)[0])
            res = run_multinorm_mc(p, d, params["replicas"], mc_alphas, seed, progress=False,
                                   u_bins=bins if s in LAW_SCHEMES else None)
            out[f"{s}/mc_alpha"] = res.alpha
            summ = res.summary()
            for key in ("w0", "L1") + tuple(a for a, _ in ACC):
                out[f"{s}/mc_{key}"] = np.asarray(summ[key])
                out[f"{s}/mc_{key}_se"] = np.asarray(summ[key + "_se"])
            if s in LAW_SCHEMES:
                idx = [res.index(a) for a in law_alphas]
                out[f"{s}/mc_hist"] = res.u_hist[idx]
        if params["theory_available"] and s in params["theory_schemes"]:
            from theory.multinorm import solve

            sol = solve(p, th_alphas, d, method="moments" if s in ("std", "adv_2") else "fv")
            out[f"{s}/th_alpha"] = np.asarray(sol["alphas"], dtype=float)
            for key in ("w0", "L1"):
                out[f"{s}/th_{key}"] = np.asarray(sol[key], dtype=float)
            for key, _ in ACC:
                out[f"{s}/th_{key}"] = 1.0 - np.asarray(sol[ERR_OF[key]], dtype=float)
            if s in LAW_SCHEMES and "rho" in sol:
                idx = [int(np.argmin(np.abs(out[f"{s}/th_alpha"] - a))) for a in law_alphas]
                out[f"{s}/th_u"] = np.asarray(sol["u"], dtype=float)
                out[f"{s}/th_rho"] = np.asarray(sol["rho"], dtype=float)[idx]
    # (c) the static frontier of linear classifiers at the same d, a, p0 and budgets
    from theory.tradeoff import Threat
    from theory.tradeoff_lp import (LpModel, best_union_accuracy_all_classifiers, coupling_bound, frontier)

    model = LpModel(d=d, a=base.a, p0=base.p0)
    t_inf, t_1 = Threat("linf", base.e / math.sqrt(d)), Threat("l1", base.eps1)
    fr = frontier(model, t_inf, t_1, **params["frontier"])
    out["fr_t"], out["fr_F"], out["fr_env"] = fr.t, fr.F, fr.envelope
    out["bound_sum"] = np.array(coupling_bound(model, t_inf.eps, t_1.eps))
    out["best_union"] = np.array(best_union_accuracy_all_classifiers(model, t_inf.eps, t_1.eps))
    return out


def _title_note(params):
    parts = []
    if not params["theory_available"]:
        parts.append("theory.multinorm.solve not available: Monte Carlo only")
    elif len(params["theory_schemes"]) < len(SCHEMES):
        parts.append("theory for " + ", ".join(params["theory_schemes"]) + " only (quick)")
    if not params["mc_available"]:
        parts.append("numba not available: theory only")
    return ("; " + "; ".join(parts)) if parts else ""


def _accuracy_panels(axes, data: dict, params: dict):
    """(a): one panel per scheme (axes: 2 x 4; the last one holds the legends of (a) and (c))."""
    d = params["d"]
    for ax, s in zip(axes.ravel(), SCHEMES):
        for key, label in ACC:
            union = key == "acc_union"
            if f"{s}/th_alpha" in data:
                ax.plot(data[f"{s}/th_alpha"], data[f"{s}/th_{key}"], color=COLORS[key], lw=1.8 if union else 1.4,
                        ls="--" if union else "-", zorder=3 if union else 2, label=f"{label}, theory at d = {d}")
            if f"{s}/mc_alpha" in data:
                ax.errorbar(data[f"{s}/mc_alpha"], data[f"{s}/mc_{key}"], yerr=data[f"{s}/mc_{key}_se"],
                            fmt=MARKERS[key], ms=6 if union else 4.5, color=COLORS[key], mfc="none", capsize=2,
                            zorder=4, label=f"{label}, Monte Carlo ({params['replicas']} replicas)")
        ax.set_title(f"(a) {s}", fontsize=11)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(-1, params["alpha_max"] + 1)
        ax.grid(alpha=0.3)
    for ax in axes[1, :3]:
        ax.set_xlabel(r"$\alpha$ = steps / N")
    axes[0, 3].set_xlabel(r"$\alpha$ = steps / N")
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    axes[1, 3].axis("off")
    leg = axes[1, 3].legend(handles, labels, loc="upper center", fontsize=8.5, frameon=False, ncol=2,
                            title="(a) accuracy (union: robust to both attacks at once)", title_fontsize=9)
    axes[1, 3].add_artist(leg)  # kept when (c) adds its legend to the same axes


def _law_panels(axes, data: dict, params: dict, fig):
    """(b): rho(u, alpha) under adv_inf, avg and max; one legend for the three panels, below the figure."""
    from matplotlib.lines import Line2D

    bins = data["u_bins"]
    mid = 0.5 * (bins[1:] + bins[:-1])
    width = bins[1] - bins[0]
    colors = [f"C{j}" for j in range(len(params["law_alphas"]))]
    for ax, s in zip(axes, LAW_SCHEMES):
        top = 0.0
        for j, a in enumerate(params["law_alphas"]):
            if f"{s}/mc_hist" in data:
                ax.step(mid, data[f"{s}/mc_hist"][j], where="mid", color=colors[j], lw=1.0, alpha=0.9)
                top = max(top, float(np.max(data[f"{s}/mc_hist"][j])))
            if f"{s}/th_rho" in data:
                u, rho = data[f"{s}/th_u"], data[f"{s}/th_rho"][j]
                inside = (u >= bins[0]) & (u <= bins[-1])
                ax.plot(u[inside], rho[inside], color=colors[j], lw=1.8, ls="--")
                if top == 0.0:
                    top = max(top, float(np.max(rho[inside])))
        ax.set_xlim(bins[0], bins[-1])
        ax.set_yscale("log")
        # the top from the Monte Carlo histogram: the theory's density at the cusp u = 0 (a near-atom under
        # l_inf training) is not resolved by histogram bins and would stretch the axis over decades
        ax.set_ylim(1e-3, 3.0 * top if top > 0 else None)
        ax.set_xlabel(r"$u = \sqrt{d}\, w_i$")
        ax.set_title(rf"(b) $\rho(u, \alpha)$ under {s}", fontsize=11)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(r"$\rho(u, \alpha)$")
    handles = [Line2D([], [], color=c, lw=2) for c in colors]
    labels = [rf"$\alpha$ = {a:g}" for a in params["law_alphas"]]
    handles += [Line2D([], [], color="0.3", lw=1.0, drawstyle="steps-mid"), Line2D([], [], color="0.3", lw=1.8, ls="--")]
    labels += [f"(b) Monte Carlo histogram, d = {params['d']}, bins {width:.2g} wide, pooled over replicas",
               f"(b) theory at d = {params['d']}"]
    legend_below(fig, handles, labels, ncol=len(labels), fontsize=9)


def _frontier_panel(ax, legend_ax, data: dict, params: dict):
    """(c): the end states on the static frontier; the scheme legend in legend_ax (outside the data)."""
    from matplotlib.lines import Line2D

    p = MultinormParams(**params["params"])
    d = params["d"]
    ax.plot(data["fr_t"], data["fr_F"], color="0.3", lw=1.4)
    ax.plot(data["fr_t"], data["fr_env"], "--", color="0.3", lw=0.8)
    xs = np.linspace(0, 1, 50)
    s = float(data["bound_sum"])
    ax.plot(xs, np.clip(s - xs, 0, 1), "k:", lw=1.2)
    handles = [Line2D([], [], color="0.3", lw=1.4), Line2D([], [], color="0.3", lw=0.8, ls="--"),
               Line2D([], [], color="k", lw=1.2, ls=":")]
    labels = ["frontier of linear classifiers (theory.tradeoff_lp)", "its concave envelope (an upper bound)",
              rf"every classifier: acc$_\infty$ + acc$_1$ $\leq$ {s:.3g}"]
    for k, sch in enumerate(SCHEMES):
        color = f"C{k}"
        parts = []
        if f"{sch}/th_alpha" in data:
            ax.plot(data[f"{sch}/th_acc_inf"][-1], data[f"{sch}/th_acc_1"][-1], "x", color=color, ms=9, mew=1.6,
                    zorder=4)
            parts.append(f"theory {data[f'{sch}/th_acc_union'][-1]:.3f}")
        if f"{sch}/mc_alpha" in data:
            ax.errorbar(data[f"{sch}/mc_acc_inf"][-1], data[f"{sch}/mc_acc_1"][-1],
                        xerr=data[f"{sch}/mc_acc_inf_se"][-1], yerr=data[f"{sch}/mc_acc_1_se"][-1], fmt="o",
                        color=color, ms=8, mfc="none", zorder=3)
            parts.append(f"MC {data[f'{sch}/mc_acc_union'][-1]:.3f}")
        handles.append(Line2D([], [], color=color, marker="o", ls="none", mfc="none", ms=7))
        labels.append(f"{sch}: union " + ", ".join(parts))
    handles += [Line2D([], [], color="0.3", marker="x", ls="none", ms=8, mew=1.6),
                Line2D([], [], color="0.3", marker="o", ls="none", mfc="none", ms=7)]
    labels += [f"theory at d = {d}", f"Monte Carlo ({params['replicas']} replicas), ± s.e."]
    lo, hi = (float(x) for x in data["best_union"])
    best = f"{lo:.3g}" if abs(hi - lo) < 5e-4 else f"between {lo:.3g} and {hi:.3g}"
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel(rf"$\ell_\infty$ accuracy (radius $e/\sqrt{{d}}$ = {p.e / math.sqrt(d):.3g})")
    ax.set_ylabel(rf"$\ell_1$ accuracy (radius {p.eps1:g})")
    ax.set_title(rf"(c) end states, $\alpha$ = {params['alpha_max']:g}", fontsize=11)
    ax.grid(alpha=0.3)
    legend_ax.legend(handles, labels, loc="lower center", fontsize=8.5, frameon=False,
                     title=f"(c) end states at alpha = {params['alpha_max']:g}; best union accuracy of any "
                           f"classifier: {best}", title_fontsize=9)


def multinorm_plot(data: dict, params: dict):
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(20, 15), layout="constrained")
    grid = fig.add_gridspec(3, 4)
    acc = np.array([[fig.add_subplot(grid[r, c]) for c in range(4)] for r in range(2)])
    _accuracy_panels(acc, data, params)
    _law_panels([fig.add_subplot(grid[2, c]) for c in range(3)], data, params, fig)
    _frontier_panel(fig.add_subplot(grid[2, 3]), acc[1, 3], data, params)
    p = MultinormParams(**params["params"])
    fig.suptitle(rf"multinorm: clean, $\ell_\infty$ (radius $e/\sqrt{{d}}$, e = {p.e:g}), $\ell_1$ "
                 rf"($\epsilon_1$ = {p.eps1:g}) and union accuracy over training; a = {p.a:g}, p0 = {p.p0:g}, "
                 rf"$\eta_w$ = {p.eta_w:g}, $\eta_b$ = {p.eta_b:g}, $w_0(0)$ = {p.w0:g}, loss {p.loss}, "
                 f"d = {params['d']}" + _title_note(params), fontsize=13)
    return fig


def _set2_params(quick: bool) -> dict:
    from simulate.multinorm.endstates import SECOND_SET

    return multinorm_params(quick, SECOND_SET)


register(FigureSpec("multinorm", "multinorm: (a) clean / l_inf / l_1 / union accuracy over alpha for every scheme, "
                    "theory lines with Monte Carlo points; (b) rho(u, alpha) under adv_inf, avg, max; (c) the end "
                    "states on the static l_inf / l_1 frontier (the issue's parameters)", multinorm_params,
                    multinorm_compute, multinorm_plot))
register(FigureSpec("multinorm_set2", "multinorm at the second parameter set (e < 2a, eps1 < 2, cross-entropy): "
                    "the panels of 'multinorm'", _set2_params, multinorm_compute, multinorm_plot))
