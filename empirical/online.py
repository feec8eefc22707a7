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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m empirical.online", description=__doc__.split("\n\n")[0])
    p.add_argument("--eps", type=float, default=4.0, help="training budget (scaled units, >= 0)")
    p.add_argument("--eps-test", type=float, default=None, help="test budget of S (default: --eps)")
    p.add_argument("--eta-w", type=float, default=0.04, help="learning rate of w; step eta_w/N (> 0)")
    p.add_argument("--eta-b", type=float, default=0.2, help="learning rate of b; step eta_b/N (>= 0)")
    p.add_argument("--erf-scale", type=float, default=1.0, help="s in erf(x/s) (> 0)")
    p.add_argument("--alpha-max", type=float, default=50.0, help="last learning time alpha = steps/N (> 0)")
    p.add_argument("--n-points", type=int, default=51, help="points of the alpha grid (>= 2)")
    p.add_argument("--seeds", type=str, default="0,1,2", help="comma-separated seeds (>= 0)")
    p.add_argument("--train-limit", type=int, default=None, help="use the first N training images of 3 and 7")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--out", type=Path, default=Path("results/online_mnist37"),
                   help="output stem: writes <out>.json and <out>.csv")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    checks = [("eps", a.eps >= 0), ("eta_w", a.eta_w > 0), ("eta_b", a.eta_b >= 0), ("erf_scale", a.erf_scale > 0),
              ("alpha_max", a.alpha_max > 0), ("n_points", a.n_points >= 2)]
    for name, ok in checks:
        if not ok or not math.isfinite(float(getattr(a, name))):
            parser.error(f"--{name.replace('_', '-')} out of range: got {getattr(a, name)} (see --help)")
    if a.eps_test is not None and not (math.isfinite(a.eps_test) and a.eps_test >= 0):
        parser.error(f"--eps-test must be finite and >= 0, got {a.eps_test}")
    if a.train_limit is not None and a.train_limit < 2:
        parser.error(f"--train-limit must be >= 2, got {a.train_limit}")
    try:
        seeds = tuple(int(s) for s in a.seeds.split(",") if s.strip())
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {a.seeds!r}")
    if not seeds or min(seeds) < 0:
        parser.error(f"--seeds must be non-negative integers, got {a.seeds!r}")
    from simulate.provenance import atomic_write, write_json

    from .data import DataError

    try:
        result = run(data_dir=a.data_dir, eps=a.eps, eps_test=a.eps_test, eta_w=a.eta_w, eta_b=a.eta_b,
                     erf_scale=a.erf_scale, alpha_max=a.alpha_max, n_points=a.n_points, seeds=seeds,
                     train_limit=a.train_limit, quiet=a.quiet)
    except DataError as exc:
        parser.error(str(exc))
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
