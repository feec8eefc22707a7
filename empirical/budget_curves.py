"""Accuracy versus budget, per threat, for the models of a reproduction table.

    python -m empirical.budget_curves --runs runs/mnist_cpu --table results/mnist_cpu_table.json \\
        --out results/mnist_cpu_budget_curves.json

For every trained run under ``--runs`` (one folder per scheme, each with ``model.pt``, as written by
``python -m empirical.reproduce``) and every threat, the robust accuracy on the first ``--n`` test images
at each budget of ``--budgets`` (budget 0 is the clean accuracy), under the evaluation module's attacks of
strength ``--strength`` (default 'eval': APGD-CE then APGD-T).  The JSON has, per table row,
{threat: {"eps": [...], "accuracy": [...]}}, with provenance; ``figures`` draws it beside the table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from .data import load_cifar10, load_mnist
from .evaluate import clean_correct, load_model, robustness_matrix
from .threats import get_threat

__all__ = ["DEFAULT_BUDGETS", "budget_curve", "main"]

DEFAULT_BUDGETS = {
    "mnist": {"linf": [0.1, 0.2, 0.3, 0.4], "l1": [2.5, 5.0, 10.0, 15.0], "l2": [0.5, 1.0, 2.0, 3.0]},
    "cifar10": {"linf": [2 / 255, 4 / 255, 8 / 255, 16 / 255], "l1": [3.0, 6.0, 12.0, 24.0],
                "l2": [0.125, 0.25, 0.5, 1.0]},
}
# the rows of empirical.reproduce and the run folders they live in
ROW_OF = {"natural": "Nat", "adv_linf": "Adv_inf", "adv_l1": "Adv_1", "adv_l2": "Adv_2", "avg": "avg",
          "max": "max", "msd": "MSD", "sat": "SAT", "mng_ac": "MNG-AC"}


def budget_curve(model, x, y, threat: str, budgets, dataset: str, strength: str, seed: int,
                 batch_size: int) -> dict:
    """Robust accuracy at each budget (the first entry, budget 0, is the clean accuracy)."""
    clean = clean_correct(model, x, y, batch_size)
    eps, acc = [0.0], [float(clean.float().mean())]
    for e in budgets:
        t = get_threat(threat, "cifar10" if dataset.startswith("cifar") else "mnist", eps=e)
        M = robustness_matrix(model, x, y, [t], strength=strength, batch_size=batch_size,
                              generator=torch.Generator().manual_seed(seed))
        eps.append(float(e))
        acc.append(float(M[:, 0].float().mean()))
    return {"eps": eps, "accuracy": acc}


def _parse_budgets(text: str | None, dataset: str) -> dict:
    base = DEFAULT_BUDGETS["cifar10" if dataset.startswith("cifar") else "mnist"]
    if not text:
        return base
    out = {}
    for part in text.split(";"):
        name, _, values = part.partition("=")
        out[name.strip()] = [float(v) for v in values.split(",") if v.strip()]
    return out


def main(argv=None) -> int:
    from tqdm import tqdm

    from simulate.provenance import provenance, write_json

    p = argparse.ArgumentParser(prog="python -m empirical.budget_curves", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, required=True, help="folder of the runs (one sub-folder per scheme)")
    p.add_argument("--dataset", default="mnist", choices=("mnist", "cifar10", "cifar10_jpeg"))
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threats", default="linf,l1,l2")
    p.add_argument("--budgets", default=None, help="e.g. 'linf=0.1,0.2;l1=5,10' [dataset defaults]")
    p.add_argument("--n", type=int, default=100, help="test images (the first n) [100]")
    p.add_argument("--strength", default="eval", choices=("train", "eval"))
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.n < 1:
        p.error(f"--n must be >= 1, got {args.n}")
    if not args.runs.is_dir():
        p.error(f"--runs: folder {args.runs} not found")
    if args.threads:
        torch.set_num_threads(args.threads)
    budgets = _parse_budgets(args.budgets, args.dataset)
    threats = [t.strip() for t in args.threats.split(",") if t.strip()]
    missing = [t for t in threats if t not in budgets]
    if missing:
        p.error(f"--budgets has no budgets for {missing}")
    if args.dataset == "mnist":
        x, y = load_mnist(args.data_dir, "test", limit=args.n)
    else:
        x, y = load_cifar10(args.data_dir, "test", source="subset", limit=args.n)
    runs = sorted(d for d in args.runs.iterdir() if (d / "model.pt").is_file())
    curves = {}
    for run in tqdm(runs, disable=args.quiet, desc="models"):
        model, _ = load_model(run / "model.pt", dataset=args.dataset)
        row = ROW_OF.get(run.name, run.name)
        curves[row] = {t: budget_curve(model, x, y, t, budgets[t], args.dataset, args.strength, args.seed,
                                       args.batch_size) for t in threats}
        if not args.quiet:
            print(row, {t: [round(a, 3) for a in c["accuracy"]] for t, c in curves[row].items()}, flush=True)
    params = {"runs": str(args.runs), "dataset": args.dataset, "n": args.n, "strength": args.strength,
              "budgets": budgets, "threats": threats}
    write_json(args.out, {"curves": curves, "params": params,
                          "provenance": provenance(params=params, seeds={"seed": args.seed})})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
