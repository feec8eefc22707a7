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

Units: eps in the scaled units above; multiply by ``scale`` (stored) for the l2 budget in pixel units.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Standardizer", "estimate_params", "train_online", "run", "main"]


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


def train_online(xi_train, tau_train, xi_test, tau_test, B, *, eps: float, eps_test: float, eta_w: float,
                 eta_b: float, erf_scale: float, alphas, seed: int, replace: bool = True) -> dict[str, list[float]]:
    """One online run; the curves R, b, E, S on the grid ``alphas`` (alpha = steps/N).

    ``replace``: draw the examples uniformly with replacement (default; needed when the run is longer than
    the training set), else in a random order without replacement, each example used once (needs at least
    as many examples as steps: the theory's fresh-sample stream).
    """
    import torch

    from .models import LinearErf

    n, N = xi_train.shape
    gen = torch.Generator().manual_seed(seed)
    model = LinearErf(N, erf_scale=erf_scale).double()
    with torch.no_grad():
        model.w.copy_(torch.randn(N, generator=gen, dtype=torch.float64))
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
    k = 0
    for step in range(total + 1):
        while k < len(steps_at) and steps_at[k] == step:
            E, S = _errors(w, float(b), xi_test, tau_test, eps_test)
            for key, val in (("alpha", step / N), ("R", float(w @ B)), ("b", float(b)), ("E", E), ("S", S)):
                out[key].append(val)
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
    return out


def run(*, data_dir=None, eps: float = 4.0, eps_test: float | None = None, eta_w: float = 0.04,
        eta_b: float = 0.2, erf_scale: float = 1.0, alpha_max: float = 50.0, n_points: int = 51,
        seeds=(0, 1, 2), digits=(3, 7), train_limit: int | None = None, quiet: bool = True) -> dict[str, Any]:
    """Standard (eps = 0) and adversarial (eps) online training, several seeds; curves, estimates, ODE."""
    from tqdm.auto import tqdm

    from simulate.ode import integrate
    from simulate.provenance import provenance
    from theory.params import Params

    from .data import mnist_binary

    eps_test = eps if eps_test is None else eps_test
    x_tr, t_tr = mnist_binary(data_dir, "train", digits, train_limit)
    x_te, t_te = mnist_binary(data_dir, "test", digits)
    std = Standardizer(x_tr, t_tr)
    xi_tr, xi_te = std(x_tr), std(x_te)
    t_tr, t_te = t_tr.double(), t_te.double()
    est = estimate_params(xi_tr, t_tr)
    B = est.pop("B")
    alphas = np.linspace(0.0, alpha_max, n_points)
    runs = []
    jobs = [(e, s) for e in (0.0, eps) for s in seeds]
    for e, s in tqdm(jobs, disable=quiet, desc="online"):
        curves = train_online(xi_tr, t_tr, xi_te, t_te, B, eps=e, eps_test=eps_test, eta_w=eta_w, eta_b=eta_b,
                              erf_scale=erf_scale, alphas=alphas, seed=s)
        runs.append({"eps": e, "seed": s, **curves})
    ode = {}
    for label, vkeys in (("per_coordinate", ("v1", "v2")), ("along_B", ("v1_along_B", "v2_along_B"))):
        for e in (0.0, eps):
            p = Params(rho=est["rho"], prior=est["prior"], v1=est[vkeys[0]], v2=est[vkeys[1]], eta_w=eta_w,
                       eta_b=eta_b, eps=e, erf_scale=erf_scale, R0=0.0, b0=0.0)
            traj = integrate(p, alphas, eps_test=eps_test)
            ode[f"{label}/eps={e:g}"] = {"params": p, **traj.to_dict()}
    params = {"eps": eps, "eps_test": eps_test, "eta_w": eta_w, "eta_b": eta_b, "erf_scale": erf_scale,
              "alpha_max": alpha_max, "n_points": n_points, "digits": list(digits), "train_limit": train_limit,
              "loss": "quadratic"}
    return {
        "what": "online SGD of the linear erf classifier on standardised MNIST 3 vs 7 (tau=+1: digit 3)",
        "units": "xi = (x - m)/scale, m = midpoint of the class means, scale = sqrt(mean within-class "
                 "pixel variance); eps in these units (l2 in pixel units: eps*scale); alpha = steps/N",
        "params": params, "scale": std.scale, "estimated": est, "runs": runs, "ode": ode,
        "provenance": provenance(params=params, seeds=list(seeds)),
    }


def _csv_text(result: dict[str, Any]) -> str:
    buf = io.StringIO()
    wr = csv.writer(buf)
    wr.writerow(["eps", "seed", "alpha", "R", "b", "E", "S"])
    for r in result["runs"]:
        for row in zip(r["alpha"], r["R"], r["b"], r["E"], r["S"]):
            wr.writerow([r["eps"], r["seed"], *(f"{v:.6g}" for v in row)])
    return buf.getvalue()


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


def build_parser() -> argparse.ArgumentParser:
    from .cli import ArgumentParser, number, path_type, state_ranges

    budget = number(float, 0.0, 100.0, why="scaled units: the class means sit at +-rho/2 (rho about 5 for 3 vs 7); "
                                           "beyond 100 every example is misclassified")
    rate = "rates beyond 100 make one step of size eta/N (N = 784) overshoot the unit sphere"
    p = ArgumentParser(prog="python -m empirical.online", description=__doc__.split("\n\n")[0])
    p.add_argument("--eps", type=budget, default=4.0, metavar="X", help="training budget (scaled units) [default: 4]")
    p.add_argument("--eps-test", type=budget, default=None, metavar="X", help="test budget of S [default: --eps]")
    p.add_argument("--eta-w", type=number(float, 0.0, 100.0, lo_open=True, why=rate), default=0.04, metavar="X",
                   help="learning rate of w; step eta_w/N [default: 0.04]")
    p.add_argument("--eta-b", type=number(float, 0.0, 100.0, why=rate), default=0.2, metavar="X",
                   help="learning rate of b; step eta_b/N [default: 0.2]")
    p.add_argument("--erf-scale", type=number(float, 1e-3, 1e3, why="erf(x/s) saturates to a step below 1e-3 and "
                                                                    "is flat beyond 1e3"),
                   default=1.0, metavar="X", help="s in erf(x/s) [default: 1]")
    p.add_argument("--alpha-max", type=number(float, 0.0, 10000.0, lo_open=True,
                                              why="steps = alpha N: 7.8 million per seed at 10,000"),
                   default=50.0, metavar="X", help="last learning time alpha = steps/N [default: 50]")
    p.add_argument("--n-points", type=number(int, 2, 10001, why="a grid needs both ends; each point is a pass "
                                                                "over the test split"),
                   default=51, metavar="N", help="points of the alpha grid [default: 51]")
    p.add_argument("--seeds", type=_seeds, default=(0, 1, 2), metavar="LIST",
                   help="comma-separated seeds, one run each [default: 0,1,2]")
    p.add_argument("--train-limit", type=number(int, 2, 60000, why="both digits need examples; MNIST has 60,000 "
                                                                  "training images"),
                   default=None, metavar="N", help="use the first N training images of 3 and 7 [default: all]")
    p.add_argument("--data-dir", type=path_type, default=None, metavar="DIR",
                   help="data folder [default: $ADVTRAIN_DATA_DIR, then ../shared/data]")
    p.add_argument("--out", type=path_type, default=Path("results/online_mnist37"), metavar="STEM",
                   help="output stem: writes <out>.json and <out>.csv [default: results/online_mnist37]")
    p.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    return state_ranges(p)


def main(argv=None) -> int:
    from .cli import check_output

    parser = build_parser()
    a = parser.parse_args(argv)
    seeds = a.seeds
    for suffix in (".json", ".csv"):
        check_output(parser, "--out", Path(f"{a.out}{suffix}"))
    from simulate.provenance import atomic_write, write_json

    from .data import DataError

    try:
        result = run(data_dir=a.data_dir, eps=a.eps, eps_test=a.eps_test, eta_w=a.eta_w, eta_b=a.eta_b,
                     erf_scale=a.erf_scale, alpha_max=a.alpha_max, n_points=a.n_points, seeds=seeds,
                     train_limit=a.train_limit, quiet=a.quiet)
    except DataError as exc:
        parser.error(f"--data-dir: {exc}")
    write_json(Path(f"{a.out}.json"), result)
    with atomic_write(Path(f"{a.out}.csv")) as fh:
        fh.write(_csv_text(result))
    if not a.quiet:
        for r in result["runs"]:
            print(f"eps={r['eps']:g} seed={r['seed']}: alpha={r['alpha'][-1]:g} R={r['R'][-1]:.3f} "
                  f"b={r['b'][-1]:.3f} E={r['E'][-1]:.4f} S={r['S'][-1]:.4f}")
        est = result["estimated"]
        print(f"estimated: rho={est['rho']:.3f} prior={est['prior']:.3f} v1={est['v1']:.3f} v2={est['v2']:.3f} "
              f"(along B: {est['v1_along_B']:.3f}, {est['v2_along_B']:.3f}); scale={result['scale']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
