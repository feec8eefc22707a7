"""Phase diagrams of adversarial training over (rho, eps) and (prior, eps): final errors, their change with
respect to standard training, the regions where adversarial training helps / hurts / has no trade-off, and
the stability of the fixed point reached.  Data: sweeps of the ODE engine (simulate.sweep), read from
results/phase_*.nc when those files hold the same sweep, computed otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .core import FigureSpec, register

RESULTS = Path(__file__).resolve().parent.parent / "results"
PLANES = {"rho_eps": ("rho", {"prior": 0.7}), "prior_eps": ("prior", {"rho": 2.0})}
KINDS = {"fixed": {"eps_law": "fixed"}, "uniform": {"eps_law": "uniform"}, "nro": {"non_robust_only": True}}
KIND_LABEL = {"fixed": "fixed budget", "uniform": "random budget (uniform law)", "nro": "non-robust-only"}
RANGES = {"rho": (0.25, 4.0), "prior": (0.05, 0.95)}


def phase_params(quick: bool) -> dict:
    n = {k: ((5 if k == "nro" else 8) if quick else (50 if k == "nro" else 100)) for k in KINDS}
    return {"n": n, "eps_max": 2.0, "alpha_F": 200.0, "eps_test": 1.0, "tol": 1e-3, "quick": quick}


def _sweep(plane: str, kind: str, params: dict):
    from simulate import sweep
    from simulate.sweep_engines import get_engine
    from theory import Params

    axis, fixed = PLANES[plane]
    n = params["n"][kind]
    lo, hi = RANGES[axis]
    base = Params(**fixed, **KINDS[kind])
    grid = sweep.make_grid([f"{axis}={lo}:{hi}:{n}", f"eps=0:{params['eps_max']}:{n}"], base, get_engine("ode"))
    opts = {"alphas": [params["alpha_F"]], "eps_test": params["eps_test"]}
    out = None if params["quick"] else RESULTS / f"phase_{plane}_{kind}.nc"
    ds, _ = sweep.run_sweep("ode", grid, opts, out=out, progress=False)
    return ds


def phase_compute(params: dict) -> dict:
    from simulate.sweep import regions

    data = {}
    for plane, (axis, _) in PLANES.items():
        for kind in KINDS:
            ds = _sweep(plane, kind, params)
            key = f"{plane}/{kind}"
            data[key + "/x"] = ds[axis].values
            data[key + "/eps"] = ds["eps"].values
            for q in ("E", "S"):
                data[f"{key}/{q}"] = ds[q].isel(alpha=-1).values
            for q in ("dE", "dS", "ev_max", "stable", "R_fp", "b_fp"):
                data[f"{key}/{q}"] = ds[q].values
            data[key + "/region"] = regions(ds["dE"].values, ds["dS"].values, params["tol"])
    return data


def _region_colors():
    from matplotlib.colors import BoundaryNorm, ListedColormap

    rcolors = ListedColormap(["#bbbbbb", "#f2f2f2", "#fdd49e", "#74c476", "#de2d26"])
    return rcolors, BoundaryNorm([-1.5, -0.5, 0.5, 1.5, 2.5, 3.5], rcolors.N)


def phase_plot(data: dict, params: dict):
    """The main figure (fixed budget: how much adversarial training changes S and E, and the regions) and
    the supplement (every quantity for the fixed, random and non-robust-only budgets)."""
    return {"": _main_plot(data, params), "_supplement": _supplement_plot(data, params)}


def _main_plot(data: dict, params: dict):
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    from simulate.sweep import REGION_NAMES

    rcolors, rnorm = _region_colors()
    cols = [("dS", f"S - S(standard), eps_test = {params['eps_test']:g}"), ("dE", "E - E(standard), clean error"),
            ("region", "where adversarial training helps")]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.6), constrained_layout=True)
    for r, plane in enumerate(PLANES):
        key = f"{plane}/fixed"
        x, e = data[key + "/x"], data[key + "/eps"]
        axis = PLANES[plane][0]
        for c, (q, title) in enumerate(cols):
            ax = axes[r, c]
            z = data[f"{key}/{q}"].T  # rows: eps
            if q == "region":
                ax.pcolormesh(x, e, z, cmap=rcolors, norm=rnorm, shading="nearest", rasterized=True)
                st = data[f"{key}/stable"].T
                ax.contourf(x, e, (st == 2).astype(float), levels=[0.5, 1.5], colors="none", hatches=["///"])
            else:
                lim = float(np.nanmax(np.abs(data[f"rho_eps/fixed/{q}"]))) or 1.0  # one scale per column
                lim = max(lim, float(np.nanmax(np.abs(data[f"prior_eps/fixed/{q}"]))))
                im = ax.pcolormesh(x, e, z, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -lim, lim), shading="nearest",
                                   rasterized=True)
                if r == 1:
                    fig.colorbar(im, ax=axes[:, c], shrink=0.6, location="bottom",
                                 label=f"{q[1:]}(adversarial) - {q[1:]}(standard)")
            ax.set_title(title if r == 0 else "", fontsize=10)
            ax.set_xlabel(axis + (" (prior 0.7)" if plane == "rho_eps" else " (rho 2)"))
            if c == 0:
                ax.set_ylabel("training budget eps")
    handles = [plt.Rectangle((0, 0), 1, 1, color=rcolors(rnorm(k))) for k in (2, 1, 3, 0)]
    handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="k", hatch="///"))
    labels = [REGION_NAMES[k] + {2: ": S and E both lower", 1: ": S lower, E higher", 3: ": S higher",
                                 0: ": |dS| < 1e-3"}[k] for k in (2, 1, 3, 0)]
    labels.append("marginal fixed point (collapse to a constant classifier)")
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False, title="regions")
    fig.suptitle(f"Adversarial minus standard training after alpha_F = {params['alpha_F']:g} (ODE, fixed budget): "
                 "blue = adversarial training lower", fontsize=11)
    return fig


def _supplement_plot(data: dict, params: dict):
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    from simulate.sweep import REGION_NAMES

    rows = [(plane, kind) for plane in PLANES for kind in KINDS]
    cols = ["E", "S", "dE", "dS", "region", "ev_max"]
    titles = {"E": "E (clean) at alpha_F", "S": f"S(eps_test={params['eps_test']:g}) at alpha_F",
              "dE": "E - E(standard)", "dS": "S - S(standard)", "region": "region",
              "ev_max": "max Re eigenvalue at the fixed point"}
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(3.3 * len(cols), 2.6 * len(rows)), constrained_layout=True)
    rcolors, rnorm = _region_colors()
    for r, (plane, kind) in enumerate(rows):
        key = f"{plane}/{kind}"
        x, e = data[key + "/x"], data[key + "/eps"]
        axis = PLANES[plane][0]
        for c, q in enumerate(cols):
            ax = axes[r, c]
            z = data[f"{key}/{q}"].T  # rows: eps
            if q == "region":
                im = ax.pcolormesh(x, e, z, cmap=rcolors, norm=rnorm, shading="nearest")
            elif q in ("dE", "dS"):
                lim = float(np.nanmax(np.abs(z))) or 1.0
                im = ax.pcolormesh(x, e, z, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -lim, lim), shading="nearest")
                fig.colorbar(im, ax=ax, shrink=0.8)
            elif q == "ev_max":
                lim = float(np.nanmax(np.abs(z))) or 1.0
                im = ax.pcolormesh(x, e, z, cmap="PuOr_r", norm=TwoSlopeNorm(0.0, -lim, lim), shading="nearest")
                fig.colorbar(im, ax=ax, shrink=0.8)
                st = data[f"{key}/stable"].T
                ax.contourf(x, e, (st == 2).astype(float), levels=[0.5, 1.5], colors="none", hatches=["///"])
                ax.contour(x, e, np.nan_to_num(st, nan=-1.0), levels=[0.5, 1.5], colors="k", linewidths=0.6)
            else:
                im = ax.pcolormesh(x, e, z, cmap="viridis", shading="nearest")
                fig.colorbar(im, ax=ax, shrink=0.8)
            if r == 0:
                ax.set_title(titles[q], fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{KIND_LABEL[kind]}\ntraining eps", fontsize=7)
            ax.set_xlabel(axis, fontsize=7)
            ax.tick_params(labelsize=6)
    # the legend of the region column (and of the hatching) below the panels, outside the data
    handles = [plt.Rectangle((0, 0), 1, 1, color=rcolors(rnorm(k))) for k in (0, 1, 2, 3, -1)]
    handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="k", hatch="///"))
    labels = [REGION_NAMES[k] for k in (0, 1, 2, 3)] + ["no data", "marginal fixed point (last column)"]
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8, frameon=False,
               title="region (fifth column)", title_fontsize=8)
    fig.suptitle("Supplement: adversarial vs standard training after alpha_F = "
                 f"{params['alpha_F']:g} (ODE); rows: (rho, eps) at prior 0.7 and (prior, eps) at rho 2; "
                 "hatched: marginal fixed point (collapse to a constant classifier)", fontsize=9)
    return fig


register(FigureSpec("phase_diagram", "phase diagrams over (rho, eps) and (prior, eps): E, S, their change from "
                    "standard training, regions, stability; fixed, random and non-robust-only budgets",
                    phase_params, phase_compute, phase_plot, requires=("xarray", "h5netcdf")))
