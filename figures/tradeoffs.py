"""Figure 5: the Tramer & Boneh trade-offs (l_inf versus l_1) in the robust/weak-feature distribution."""

from __future__ import annotations

import numpy as np

from theory.tradeoff import Threat
from theory.tradeoff_lp import (LinearClassifier, LpModel, affine_accuracy, coupling_bound, family_accuracies,
                                frontier, robust_accuracy, union_accuracy)

from .core import PALETTE, THREAT_COLORS, FigureSpec, register


def tradeoffs_params(quick: bool) -> dict:
    return {"d": 200, "a": 2.0, "p0": 0.95, "eps_1": 2.0, "n_theta": 61 if quick else 241,
            "n_psi": 31 if quick else 121, "n_tau": 1 if quick else 6, "n_beta": 21 if quick else 101,
            "n_mix": 41 if quick else 181}


def _model_threats(params):
    model = LpModel(d=params["d"], a=params["a"], p0=params["p0"])
    return model, Threat("linf", 2.0 * model.eta), Threat("l1", params["eps_1"])


def tradeoffs_compute(params: dict) -> dict:
    model, t_inf, t_1 = _model_threats(params)
    fam = family_accuracies(model, t_inf, t_1, n_theta=params["n_theta"], n_psi=params["n_psi"])
    fr = frontier(model, t_inf, t_1, n_theta=params["n_theta"], n_psi=params["n_psi"], n_tau=params["n_tau"])
    out = {"family_inf": fam["A"].ravel(), "family_1": fam["B"].ravel(), "family_union": fam["U"].ravel(),
           "t": fr.t, "F": fr.F, "envelope": fr.envelope,
           "bound": np.array(coupling_bound(model, t_inf.eps, t_1.eps))}
    # classifiers mixing the robust feature and the weak ones: sign(cos(th) x0 + sin(th) z)
    theta = np.linspace(0.0, np.pi / 2, params["n_mix"])
    acc = {"inf": [], "l1": [], "union": [], "clean": []}
    for th in theta:
        clf = LinearClassifier.symmetric(model.d, np.cos(th), np.sin(th), 0.0)
        acc["inf"].append(robust_accuracy(model, clf, t_inf))
        acc["l1"].append(robust_accuracy(model, clf, t_1))
        acc["union"].append(union_accuracy(model, clf, [t_inf, t_1]))
        acc["clean"].append(robust_accuracy(model, clf, Threat("linf", 0.0)))
    out["theta"] = theta
    for k, v in acc.items():
        out[f"mix_{k}"] = np.array(v)
    beta = np.linspace(0.0, 1.0, params["n_beta"])
    out["beta"] = beta
    for name, th in (("robust", 0.0), ("mixed", np.pi / 4), ("weak", np.pi / 2)):
        clf = LinearClassifier.symmetric(model.d, np.cos(th), np.sin(th), 0.0)
        out[f"affine_{name}"] = np.asarray(affine_accuracy(model, clf, t_inf, t_1, beta))
        out[f"union_{name}"] = np.array(union_accuracy(model, clf, [t_inf, t_1]))
    return out


def tradeoffs_plot(data: dict, params: dict):
    import matplotlib.pyplot as plt

    model, t_inf, t_1 = _model_threats(params)
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.4), constrained_layout=True)
    below = dict(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=7, frameon=False)
    ax = axes[0]
    ax.scatter(data["family_inf"], data["family_1"], s=2, color="0.75", rasterized=True,
               label="linear classifiers sign(w0 x0 + wz z + c)")
    ax.plot(data["t"], data["F"], color="C0", label="frontier (achieved)")
    ax.plot(data["t"], data["envelope"], "--", color="C0", lw=0.8, label="frontier upper bound (envelope)")
    s = float(data["bound"])
    xs = np.linspace(0, 1, 50)
    ax.plot(xs, np.clip(s - xs, 0, 1), "-", color=PALETTE["reference"], lw=1.5,
            label=f"every classifier: acc_inf + acc_1 <= {s:.3g}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"l_inf accuracy (eps = 2 eta = {t_inf.eps:.3f})")
    ax.set_ylabel(f"l_1 accuracy (eps = {t_1.eps:g})")
    ax.set_title(f"d={model.d}, a={model.a:g}, p0={model.p0:g}", fontsize=10)
    ax.legend(ncol=2, **below)

    ax = axes[1]
    deg = np.degrees(data["theta"])
    for key, label in (("clean", "clean"), ("inf", "l_inf"), ("l1", "l_1"), ("union", "union")):
        ax.plot(deg, data[f"mix_{key}"], label=label, lw=2 if key == "union" else 1.2,
                color=THREAT_COLORS["linf" if key == "inf" else key])
    ax.axhline(0.5, color=PALETTE["reference"], lw=0.8, ls=":", label="best union accuracy of any classifier (1/2)")
    ax.set_xlabel("weight angle: 0 = robust feature x0 only, 90 = weak features only")
    ax.set_ylabel("accuracy")
    ax.legend(ncol=3, **below)
    ax.set_title("mixing the robust and the weak features", fontsize=10)

    ax = axes[2]
    for i, name in enumerate(("robust", "mixed", "weak")):
        ax.plot(data["beta"], data[f"affine_{name}"], color=f"C{i}", label=f"affine, {name}-feature classifier")
        ax.axhline(float(data[f"union_{name}"]), color=f"C{i}", ls="--", lw=0.8)
    ax.set_xlabel("beta (perturbation beta r_inf + (1 - beta) r_1)")
    ax.set_ylabel("accuracy")
    ax.set_title("affine combinations (dashed: union of the two threats)", fontsize=10)
    ax.legend(ncol=2, **below)
    fig.suptitle("l_inf vs l_1 in Tramer & Boneh's distribution: acc_inf + acc_1 <= 1 for every classifier, so "
                 "no union accuracy above 1/2 (exact)",
                 fontsize=11)
    return fig


register(FigureSpec("tradeoffs", "l_inf vs l_1 trade-off: achievable region and mutual-exclusivity bound, "
                    "union accuracy, affine combinations", tradeoffs_params, tradeoffs_compute, tradeoffs_plot))
