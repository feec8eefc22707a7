"""The theory-to-data bridge: the linear erf classifier trained online on MNIST 3 versus 7.

    python -m empirical.online --eps 4 --alpha-max 50 --out results/online_mnist37

Model and update are those of the theory (theory/params.py, docs/theory.md), on real images:

* Inputs.  Each image is flattened to xi in R^N, N = 784, then centred and scaled:
  xi = (x - m) / s with m = (mu_+ + mu_-)/2 the midpoint of the two class means and s the square root of
  the within-class variance per pixel averaged over pixels and classes, all estimated on the training
  split.  In these units the class means are +-(rho/2) B_hat with B_hat the unit vector joining them, and
  the average variance per coordinate is 1, as in the Gaussian-mixture model.  Labels tau = +1 for digit
  3, -1 for digit 7.
* Classifier sigma = erf((w.xi - b)/s_erf), |w| = 1 (``models.LinearErf``; w starts as a random unit
  vector drawn from the seed, b = 0).
* One example per step, drawn uniformly with replacement from the training split (the theory's
  i.i.d. stream); adversarial training replaces xi by xi_adv = xi - tau eps w (the worst-case l2
  perturbation of a unit-norm linear model), then
      w <- (w - (eta_w/N) delta xi_adv) / |.|,    b <- b + (eta_b/N) delta,    delta = dL/dx,
  x = w.xi_adv - b, L = (sigma - tau)^2/2 (the theory's step; delta written by hand below).
* Learning time alpha = steps/N.  At each alpha of the grid the test split gives the test error
  E = P(tau (w.xi - b) <= 0) and the adversarial error S(eps_test) = P(tau (w.xi - b) <= eps_test)
  (exact for a linear classifier under an l2 budget, in the scaled units), with R = w.B_hat.

The same data give the Gaussian-mixture parameters (``estimate_params``): rho = |mu_+ - mu_-| (scaled),
prior p = fraction of 3s, v1, v2 = per-class variance per coordinate (averaged over coordinates), and,
for comparison, the variances of the projection B_hat.xi (the direction that matters for R; MNIST is far
from isotropic, so the two differ).  ``theory.Params`` built from them lets a figure set the ODE
(simulate.ode.integrate) beside these curves; the JSON also holds that ODE solution on the same grid.

Structured theory (the same command, key ``structured``): the class means and covariances of the
standardised training split are fitted (:mod:`empirical.mixture_fit`: pooled or per class, Ledoit-Wolf
shrinkage by default) and the dynamics of :mod:`theory.structured` is integrated for each seed from that
seed's own initial w (the same vector the online run starts from), with the same eta_w, eta_b, eps and
erf scale.  ``--mc-replicas K`` adds the Monte Carlo of the fitted Gaussian mixture (the numba engine of
:mod:`simulate.mc`, :func:`simulate.structured.monte_carlo`).  Each real run also records the order
parameters of its own w under the fitted law (M_tau = w.mu_tau, Q_tau = w'Sigma_tau w) and the errors the
Gaussian mixture would give that very w (E_gauss, S_gauss), so that a gap between theory and data splits
into a gap of the dynamics (M, Q) and a gap of Gaussian equivalence at fixed w; the local field of the
final w on the test split is stored as a histogram beside its Gaussian prediction.  ``table`` holds the
four routes side by side at ``--report-alphas``.

Data: ``--dataset mnist|fashion_mnist|cifar10`` and ``--classes a,b`` (tau = +1 for a).

Units: eps in the scaled units above; multiply by ``scale`` (stored) for the l2 budget in pixel units.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from simulate.cli import command

from .online_tables import format_table, markdown_table, route_table, runs_csv_text

__all__ = ["Standardizer", "estimate_params", "initial_weight", "train_online", "load_pair", "structured_routes",
           "run", "main", "REPORT_ALPHAS", "format_table", "markdown_table"]

REPORT_ALPHAS = (1.0, 5.0, 10.0, 25.0, 50.0, 100.0)


class Standardizer:
    """xi = (x - m)/s fitted on the training split (see the module docstring)."""

    def __init__(self, x, tau):
        import torch

        x = x.flatten(1).double()
        mu_p, mu_m = x[tau > 0].mean(0), x[tau < 0].mean(0)
        self.m = (mu_p + mu_m) / 2
        v = (x[tau > 0].var(0).mean() + x[tau < 0].var(0).mean()) / 2
        self.scale = float(torch.sqrt(v))

    def __call__(self, x):
        return (x.flatten(1).double() - self.m) / self.scale


def estimate_params(xi, tau) -> dict[str, Any]:
    """Gaussian-mixture parameters of standardised inputs xi [n, N] with labels tau in {+1, -1}."""
    pos, neg = xi[tau > 0], xi[tau < 0]
    diff = pos.mean(0) - neg.mean(0)
    rho = float(diff.norm())
    B = diff / rho
    return {
        "rho": rho, "prior": float((tau > 0).double().mean()),
        "v1": float(pos.var(0).mean()), "v2": float(neg.var(0).mean()),
        "v1_along_B": float((pos @ B).var()), "v2_along_B": float((neg @ B).var()),
        "N": int(xi.shape[1]), "n": int(xi.shape[0]),
        "B": B,
    }


def _errors(w, b, xi, tau, eps_test: float) -> tuple[float, float]:
    margin = tau * (xi @ w - b)
    return float((margin <= 0).double().mean()), float((margin <= eps_test).double().mean())


def initial_weight(N: int, seed: int):
    """The initial w of :func:`train_online` for ``seed`` (a normalised standard normal vector, float64)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(N, generator=gen, dtype=torch.float64)
    return w / w.norm(), gen


def train_online(xi_train, tau_train, xi_test, tau_test, B, *, eps: float, eps_test: float, eta_w: float,
                 eta_b: float, erf_scale: float, alphas, seed: int, replace: bool = True,
                 fitted=None, return_final: bool = False) -> dict[str, list[float]]:
    """One online run; the curves R, b, E, S on the grid ``alphas`` (alpha = steps/N).

    ``replace``: draw the examples uniformly with replacement (default; needed when the run is longer than
    the training set), else in a random order without replacement, each example used once (needs at least
    as many examples as steps: the theory's fresh-sample stream).  ``fitted`` (a
    :class:`empirical.mixture_fit.FittedMixture`) adds the curves M_plus, M_minus, Q_plus, Q_minus of the
    current w under the fitted law.
    """
    import torch

    from .models import LinearErf

    n, N = xi_train.shape
    w_init, gen = initial_weight(N, seed)
    model = LinearErf(N, erf_scale=erf_scale).double()
    with torch.no_grad():
        model.w.copy_(w_init)
        model.renormalize_()
    w, b = model.w.data, model.b.data  # updated in place by the theory's step
    steps_at = np.rint(np.asarray(alphas) * N).astype(np.int64)
    total = int(steps_at[-1])
    if replace:
        picks = torch.randint(n, (max(total, 1),), generator=gen)
    elif total > n:
        raise ValueError(f"replace=False needs at least {total} training examples (alpha_max * N), got {n}")
    else:
        picks = torch.randperm(n, generator=gen)
    c = 2.0 / (math.sqrt(math.pi) * erf_scale)
    out = {"alpha": [], "R": [], "b": [], "E": [], "S": []}
    if fitted is not None:
        mu_f = torch.as_tensor(fitted.mu, dtype=torch.float64)
        cov_f = torch.as_tensor(fitted.cov, dtype=torch.float64)
        out.update({"M_plus": [], "M_minus": [], "Q_plus": [], "Q_minus": []})
    k = 0
    for step in range(total + 1):
        while k < len(steps_at) and steps_at[k] == step:
            E, S = _errors(w, float(b), xi_test, tau_test, eps_test)
            for key, val in (("alpha", step / N), ("R", float(w @ B)), ("b", float(b)), ("E", E), ("S", S)):
                out[key].append(val)
            if fitted is not None:
                for j, sfx in enumerate(("plus", "minus")):
                    out[f"M_{sfx}"].append(float(mu_f[j] @ w))
                    out[f"Q_{sfx}"].append(float(w @ (cov_f[j] @ w)))
            k += 1
        if step == total:
            break
        i = picks[step]
        t = float(tau_train[i])
        xi = xi_train[i] - t * eps * w if eps > 0 else xi_train[i]
        x = float(xi @ w) - float(b)
        sigma = math.erf(x / erf_scale)
        delta = (sigma - t) * c * math.exp(-(x / erf_scale) ** 2)  # dL/dx for L = (sigma - tau)^2 / 2
        w.sub_(xi, alpha=eta_w * delta / N)
        w.div_(w.norm())
        b.add_(eta_b * delta / N)
    if return_final:
        out["w_final"] = w.clone()
    return out


DATASET_NAMES = ("mnist", "fashion_mnist", "cifar10")
MIN_PER_CLASS = 2


def load_pair(dataset: str, classes, split: str, data_dir=None, limit: int | None = None):
    """Images of the classes ``classes = (a, b)`` of ``dataset`` with labels tau = +1 (a) / -1 (b).

    Returns (x float [n, ...], tau float [n]); the first ``limit`` matching images when ``limit`` is given.
    A class with fewer than 2 images raises :class:`empirical.data.DataError`.
    """
    import torch

    from .data import DataError, load_dataset

    if dataset not in DATASET_NAMES:
        raise DataError(f"dataset must be one of {', '.join(DATASET_NAMES)}, got {dataset!r}")
    a, b = classes
    if a == b or not all(isinstance(c, (int, np.integer)) and 0 <= c <= 9 for c in (a, b)):
        raise DataError(f"classes must be two distinct integers in 0..9, got {classes!r}")
    x, y = load_dataset(dataset, data_dir, split)
    keep = (y == a) | (y == b)
    x, y = x[keep], y[keep]
    if limit is not None:
        x, y = x[:limit], y[:limit]
    tau = torch.where(y == a, 1.0, -1.0).to(torch.float32)
    for c, t in ((a, 1.0), (b, -1.0)):
        n = int((tau == t).sum())
        if n < MIN_PER_CLASS:
            raise DataError(f"class {c} of {dataset} ({split}) has {n} image(s); at least {MIN_PER_CLASS} are needed")
    return x, tau


def _gauss_errors(M, Q, b, prior: float, eps_test: float):
    """E and S of sign(w.xi - b) under the fitted Gaussian mixture from (M_tau, Q_tau, b) arrays."""
    from theory.structured import errors_from_order_parameters

    return errors_from_order_parameters(M, Q, np.asarray(b), prior, eps_test)


def structured_routes(fitted, *, eps_values, eps_test, eta_w, eta_b, erf_scale, alphas, seeds, N,
                      mc_replicas: int = 0, mc_seed: int = 0, path: str = "auto", quiet: bool = True):
    """Theory (per seed, from that seed's initial w) and optionally the Monte Carlo of the fitted mixture."""
    from simulate.core.run import replica_stats
    from simulate.structured import compare, integrate, monte_carlo, theory_from_replicas
    from theory.params import Params
    from theory.structured import initial_state

    mix = fitted.mixture(path)
    out: dict[str, Any] = {"path": "spectral" if mix.spectral else "full", "theory": {}, "mc": {}}
    for e in eps_values:
        p = Params(prior=fitted.prior, eta_w=eta_w, eta_b=eta_b, eps=e, erf_scale=erf_scale)
        per_seed = []
        for s in seeds:
            w0 = initial_weight(N, s)[0].numpy()
            tr = integrate(mix, p, alphas, state0=initial_state(mix, w0=w0), eps_test=eps_test, rtol=1e-8, atol=1e-10)
            per_seed.append({"seed": s, **{k: tr.values[k] for k in ("E", "S", "M_plus", "M_minus", "Q_plus",
                                                                     "Q_minus", "b")},
                             "wall_s": tr.solver["wall_s"], "nfev": tr.solver["nfev"]})
        out["theory"][f"eps={e:g}"] = per_seed
        if mc_replicas:
            mc = monte_carlo(mix, p, mc_replicas, alphas, seed=mc_seed, eps_test=eps_test, progress=not quiet)
            out["mc"][f"eps={e:g}"] = {
                "alpha": mc["alpha"], "info": mc["info"],
                **{k: {n: replica_stats(mc[k])[n] for n in ("mean", "se")}
                   for k in ("E", "S", "M_plus", "M_minus", "Q_plus", "Q_minus", "b")}}
            # the theory from the MC replicas' own initial w (averaged over them), and from m = 0, C = I/N
            if mix.spectral:
                tr = theory_from_replicas(mix, p, mc, rtol=1e-8, atol=1e-10)
                out["mc"][f"eps={e:g}"]["theory_mc_starts"] = {k: tr.values[k] for k in ("E", "S", "M_plus", "Q_plus")}
                cmp = compare(tr, mc)
                out["mc"][f"eps={e:g}"]["check"] = {"passed": cmp.passed, "q": cmp.q, "m": cmp.m,
                                                     "max_abs_z": {n: float(np.max(np.abs(cmp.z(n))))
                                                                   for n in cmp.quantities},
                                                     "failures": cmp.failures()}
            tr = integrate(mix, p, alphas, eps_test=eps_test, rtol=1e-8, atol=1e-10)
            out["mc"][f"eps={e:g}"]["theory_random_start"] = {k: tr.values[k] for k in ("E", "S", "M_plus", "Q_plus")}
    return out


def field_histogram(w, b: float, xi, tau, fitted, bins: int = 60) -> dict[str, Any]:
    """Histogram of the local field h = w.xi of each class on ``xi`` beside its Gaussian prediction
    N(w.mu_tau, w'Sigma_tau w); with the tail masses that decide the errors."""
    from scipy.special import ndtr

    out = {}
    h = (xi @ w).numpy()
    t = tau.numpy()
    for j, (name, sgn) in enumerate((("plus", 1.0), ("minus", -1.0))):
        hv = h[t == sgn]
        M = float(fitted.mu[j] @ w.numpy())
        Q = float(w.numpy() @ fitted.cov[j] @ w.numpy())
        counts, edges = np.histogram(hv, bins=bins)
        z = (hv - M) / math.sqrt(Q)
        out[name] = {"edges": edges, "counts": counts, "n": int(hv.size), "M": M, "Q": Q,
                     "mean": float(hv.mean()), "var": float(hv.var()),
                     "skew": float(np.mean(z**3) - 3 * np.mean(z) * np.mean(z**2) + 2 * np.mean(z) ** 3),
                     "error_data": float(np.mean(sgn * (hv - b) <= 0)),
                     "error_gauss": float(ndtr(-sgn * (M - b) / math.sqrt(Q))),
                     "tail_3sd_data": float(np.mean(np.abs(z) > 3)), "tail_3sd_gauss": float(2 * ndtr(-3.0))}
    return out


def run(*, data_dir=None, dataset: str = "mnist", classes=(3, 7), eps: float = 4.0, eps_test: float | None = None,
        eta_w: float = 0.04, eta_b: float = 0.2, erf_scale: float = 1.0, alpha_max: float = 50.0,
        n_points: int = 51, seeds=(0, 1, 2), digits=None, train_limit: int | None = None,
        covariance: str = "pooled", shrinkage: str = "ledoit_wolf", structured: bool = True, mc_replicas: int = 0,
        mc_seed: int = 0, report_alphas=REPORT_ALPHAS, quiet: bool = True) -> dict[str, Any]:
    """Standard (eps = 0) and adversarial (eps) online training, several seeds, beside (a) the isotropic ODE
    of the fitted mixture, (b) the structured theory per seed, (c) optionally the Monte Carlo of the fitted
    Gaussian mixture; ``table`` holds them at ``report_alphas``."""
    from tqdm.auto import tqdm

    from simulate.ode import integrate
    from simulate.provenance import provenance
    from theory.params import Params

    from .mixture_fit import fit_mixture

    if digits is not None:  # the former name of ``classes`` (MNIST digits)
        classes = tuple(digits)
    eps_test = eps if eps_test is None else eps_test
    x_tr, t_tr = load_pair(dataset, classes, "train", data_dir, train_limit)
    x_te, t_te = load_pair(dataset, classes, "test", data_dir)
    std = Standardizer(x_tr, t_tr)
    xi_tr, xi_te = std(x_tr), std(x_te)
    t_tr, t_te = t_tr.double(), t_te.double()
    est = estimate_params(xi_tr, t_tr)
    B = est.pop("B")
    N = int(xi_tr.shape[1])
    fitted = fit_mixture(xi_tr.numpy(), t_tr.numpy(), covariance, shrinkage) if structured else None
    alphas = np.linspace(0.0, alpha_max, n_points)
    alphas = np.unique(np.concatenate([alphas, [a for a in report_alphas if a <= alpha_max]]))
    runs = []
    hist = {}
    jobs = [(e, s) for e in (0.0, eps) for s in seeds]
    for e, s in tqdm(jobs, disable=quiet, desc="online"):
        curves = train_online(xi_tr, t_tr, xi_te, t_te, B, eps=e, eps_test=eps_test, eta_w=eta_w, eta_b=eta_b,
                              erf_scale=erf_scale, alphas=alphas, seed=s, fitted=fitted, return_final=True)
        w_final = curves.pop("w_final")
        if fitted is not None:
            Eg, Sg = _gauss_errors((np.array(curves["M_plus"]), np.array(curves["M_minus"])),
                                   (np.array(curves["Q_plus"]), np.array(curves["Q_minus"])), curves["b"],
                                   fitted.prior, eps_test)
            curves["E_gauss"], curves["S_gauss"] = Eg.tolist(), Sg.tolist()
            if s == seeds[0]:
                hist[f"eps={e:g}"] = field_histogram(w_final, curves["b"][-1], xi_te, t_te, fitted)
        runs.append({"eps": e, "seed": s, **curves})
    ode = {}
    for label, vkeys in (("per_coordinate", ("v1", "v2")), ("along_B", ("v1_along_B", "v2_along_B"))):
        for e in (0.0, eps):
            p = Params(rho=est["rho"], prior=est["prior"], v1=est[vkeys[0]], v2=est[vkeys[1]], eta_w=eta_w,
                       eta_b=eta_b, eps=e, erf_scale=erf_scale, R0=0.0, b0=0.0)
            traj = integrate(p, alphas, eps_test=eps_test)
            ode[f"{label}/eps={e:g}"] = {"params": p, **traj.to_dict()}
    params = {"dataset": dataset, "classes": list(classes), "eps": eps, "eps_test": eps_test, "eta_w": eta_w,
              "eta_b": eta_b, "erf_scale": erf_scale, "alpha_max": alpha_max, "n_points": n_points,
              "digits": list(classes), "train_limit": train_limit, "loss": "quadratic", "covariance": covariance,
              "shrinkage": shrinkage, "mc_replicas": mc_replicas, "mc_seed": mc_seed}
    result = {
        "what": f"online SGD of the linear erf classifier on standardised {dataset} {classes[0]} vs {classes[1]} "
                f"(tau=+1: class {classes[0]})",
        "units": "xi = (x - m)/scale, m = midpoint of the class means, scale = sqrt(mean within-class "
                 "pixel variance); eps in these units (l2 in pixel units: eps*scale); alpha = steps/N",
        "params": params, "scale": std.scale, "estimated": est, "alphas": alphas, "runs": runs, "ode": ode,
        "provenance": provenance(params=params, seeds=list(seeds)),
    }
    if fitted is not None:
        t0 = time.perf_counter()
        result["fit"] = fitted.summary()
        result["structured"] = structured_routes(fitted, eps_values=(0.0, eps), eps_test=eps_test, eta_w=eta_w,
                                                 eta_b=eta_b, erf_scale=erf_scale, alphas=alphas, seeds=seeds, N=N,
                                                 mc_replicas=mc_replicas, mc_seed=mc_seed, quiet=quiet)
        result["structured"]["wall_s"] = time.perf_counter() - t0
        result["field_histogram"] = hist
        result["table"] = route_table(result, report_alphas)
    return result


def _seeds(text: str) -> tuple[int, ...]:
    from .cli import ranged

    try:
        seeds = tuple(ranged("seed")(t.strip()) for t in text.split(",") if t.strip())
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"comma-separated seeds: {exc}") from None
    if not 1 <= len(seeds) <= 1000:
        raise argparse.ArgumentTypeError(f"1 to 1000 comma-separated seeds (each a run of its own), got {text!r}")
    return seeds


_seeds.__name__ = "seed list"


def _classes(text: str) -> tuple[int, int]:
    try:
        classes = tuple(int(c) for c in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"two comma-separated class indices 0-9, got {text!r}") from None
    if len(classes) != 2 or classes[0] == classes[1] or not all(0 <= c <= 9 for c in classes):
        raise argparse.ArgumentTypeError(f"two different comma-separated class indices 0-9, got {text!r}")
    return classes


_classes.__name__ = "class pair"


def _shrinkage(text: str) -> str:
    if text in ("ledoit_wolf", "none"):
        return text
    if text.startswith("ridge:"):
        try:
            x = float(text[6:])
        except ValueError:
            x = math.nan
        if math.isfinite(x) and 0.0 <= x <= 1e6:
            return text
    raise argparse.ArgumentTypeError(f"ledoit_wolf, ridge:X (X in [0, 1e6]) or none, got {text!r}")


_shrinkage.__name__ = "shrinkage"


def build_parser() -> argparse.ArgumentParser:
    from .cli import ArgumentParser, number, path_type, state_ranges

    budget = number(float, 0.0, 100.0, why="scaled units: the class means sit at +-rho/2 (rho about 23 for 3 vs 7, "
                                           "the printed 'estimated: rho'), each class spreads with sd about 5-6 "
                                           "along the line joining them; beyond 100 every example is misclassified")
    from simulate.core.cli import range_type
    from theory.params import RANGES as MODEL_RANGES  # eta_w, eta_b, erf_scale feed theory.Params

    p = ArgumentParser(prog="python -m empirical.online", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=DATASET_NAMES, default="mnist", help="data set [default: mnist]")
    p.add_argument("--classes", type=_classes, default=(3, 7), metavar="A,B",
                   help="the two classes a,b (tau = +1 for a) [default: 3,7]")
    p.add_argument("--eps", type=budget, default=4.0, metavar="X", help="training budget (scaled units) [default: 4]")
    p.add_argument("--eps-test", type=budget, default=None, metavar="X", help="test budget of S [default: --eps]")
    p.add_argument("--eta-w", type=range_type(MODEL_RANGES["eta_w"]), default=0.04, metavar="X",
                   help="learning rate of w; step eta_w/N [default: 0.04]")
    p.add_argument("--eta-b", type=range_type(MODEL_RANGES["eta_b"]), default=0.2, metavar="X",
                   help="learning rate of b; step eta_b/N [default: 0.2]")
    p.add_argument("--erf-scale", type=range_type(MODEL_RANGES["erf_scale"]), default=1.0, metavar="X",
                   help="s in erf(x/s) [default: 1]")
    p.add_argument("--alpha-max", type=number(float, 0.0, 10000.0, lo_open=True,
                                              why="steps = alpha N: 7.8 million per seed at 10,000"),
                   default=50.0, metavar="X", help="last learning time alpha = steps/N [default: 50]")
    p.add_argument("--n-points", type=number(int, 2, 10001, why="a grid needs both ends; each point is a pass "
                                                                "over the test split"),
                   default=51, metavar="N", help="points of the alpha grid [default: 51]")
    p.add_argument("--seeds", type=_seeds, default=(0, 1, 2), metavar="LIST",
                   help="comma-separated seeds, one run each [default: 0,1,2]")
    p.add_argument("--train-limit", type=number(int, 2, 60000, why="both classes need examples; the data sets have "
                                                                  "at most 60,000 training images"),
                   default=None, metavar="N", help="use the first N training images of the pair [default: all]")
    p.add_argument("--covariance", choices=("pooled", "per_class"), default="pooled",
                   help="fitted covariance: one pooled within-class matrix (shared eigenbasis) or one per class")
    p.add_argument("--shrinkage", type=_shrinkage, default="ledoit_wolf", metavar="KIND",
                   help="covariance shrinkage: ledoit_wolf, ridge:X (adds X tr(S)/N I) or none [default: ledoit_wolf]")
    p.add_argument("--no-structured", action="store_true", help="skip the fitted-mixture theory")
    p.add_argument("--mc-replicas", type=number(int, 0, 4096, why="0 for none; a standard error needs two; each "
                                                                  "replica is a full N-dimensional run"),
                   default=0, metavar="M", help="Monte Carlo replicas of the fitted mixture (0: none) [default: 0]")
    p.add_argument("--mc-seed", type=number(int, 0, 2**63 - 1, why="a SeedSequence entropy of at most 63 bits"),
                   default=0, metavar="S", help="root seed of the Monte Carlo [default: 0]")
    p.add_argument("--data-dir", type=path_type, default=None, metavar="DIR",
                   help="data folder [default: $ADVTRAIN_DATA_DIR, then ../shared/data]")
    p.add_argument("--out", type=path_type, default=Path("runs/online_mnist37"), metavar="STEM",
                   help="output stem: writes <out>.json and <out>.csv [default: runs/online_mnist37 in the current "
                        "folder]")
    p.add_argument("--overwrite", action="store_true", help="replace existing <out>.json / <out>.csv files")
    p.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    return state_ranges(p)


@command
def main(argv=None) -> int:
    from .cli import claim_output

    parser = build_parser()
    a = parser.parse_args(argv)
    if a.mc_replicas == 1:
        parser.error("--mc-replicas: must be 0 or >= 2 (a standard error needs two replicas)")
    seeds, classes = a.seeds, a.classes
    for suffix in (".json", ".csv"):
        claim_output(parser, "--out", Path(f"{a.out}{suffix}"), overwrite=a.overwrite)
    from simulate.provenance import atomic_write, write_json
    from theory.params import ParameterError

    from .data import DataError
    from .mixture_fit import FitError

    try:
        result = run(data_dir=a.data_dir, dataset=a.dataset, classes=classes, eps=a.eps, eps_test=a.eps_test,
                     eta_w=a.eta_w, eta_b=a.eta_b, erf_scale=a.erf_scale, alpha_max=a.alpha_max,
                     n_points=a.n_points, seeds=seeds, train_limit=a.train_limit, covariance=a.covariance,
                     shrinkage=a.shrinkage, structured=not a.no_structured, mc_replicas=a.mc_replicas,
                     mc_seed=a.mc_seed, quiet=a.quiet)
    except (DataError, FitError, ParameterError) as exc:
        parser.error(str(exc).splitlines()[0])
    write_json(Path(f"{a.out}.json"), result)
    with atomic_write(Path(f"{a.out}.csv")) as fh:
        fh.write(runs_csv_text(result))
    if not a.quiet:
        for r in result["runs"]:
            print(f"eps={r['eps']:g} seed={r['seed']}: alpha={r['alpha'][-1]:g} R={r['R'][-1]:.3f} "
                  f"b={r['b'][-1]:.3f} E={r['E'][-1]:.4f} S={r['S'][-1]:.4f}")
        est = result["estimated"]
        print(f"estimated: rho={est['rho']:.3f} prior={est['prior']:.3f} v1={est['v1']:.3f} v2={est['v2']:.3f} "
              f"(along B: {est['v1_along_B']:.3f}, {est['v2_along_B']:.3f}); scale={result['scale']:.4f}")
        if "table" in result:
            print(format_table(result["table"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
