"""Robustness to several threats at once: a per-example x per-threat boolean matrix, and its summary.

    python -m empirical.evaluate --model runs/mnist_max/model.pt --data-dir ../shared/data --threats linf,l1,l2,rt

Definitions (RobustBench / Tramer & Boneh 2019 conventions): example i is *robust to threat j* when it is
correctly classified clean AND at the point returned by threat j's evaluation attack (``attack_for(threat,
"eval")``: APGD-CE then APGD-T for l_p balls, full grid for rotation-translation). Then

    clean accuracy     = mean_i clean_i
    threat-j accuracy  = mean_i M_ij
    union accuracy     = mean_i AND_j M_ij       (robust to every threat at once)
    average accuracy   = mean_j (threat-j accuracy)

so union <= every single-threat accuracy <= clean accuracy by construction. Budgets default to the
literature's (:data:`empirical.threats.DEFAULT_BUDGETS`); ``--eps linf=0.2,l1=8`` overrides them.
The JSON written by ``--out`` holds the summary, the matrix itself and provenance.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

__all__ = ["robustness_matrix", "clean_correct", "summarize", "format_table", "load_model", "main"]


def _batches(n: int, batch_size: int):
    for i in range(0, n, batch_size):
        yield slice(i, min(n, i + batch_size))


@torch.no_grad()
def clean_correct(model, x, y, batch_size: int = 256, device=None) -> torch.Tensor:
    """bool [n]: the model classifies x_i correctly."""
    device = device or next(model.parameters()).device
    out = [model(x[s].to(device)).argmax(1).cpu() == y[s].cpu() for s in _batches(len(x), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def robustness_matrix(model, x, y, threats, strength: str = "eval", batch_size: int = 256,
                      generator: torch.Generator | None = None, device=None, attacks=None,
                      quiet: bool = True) -> torch.Tensor:
    """bool [n, k]: M[i, j] is True when example i is correctly classified both clean and after the attack
    for ``threats[j]`` (``attacks[j]`` if given, else ``attack_for(threats[j], strength)``).

    Runs in batches of ``batch_size`` on ``device`` (default: the model's); random draws come from
    ``generator`` (None: a CPU generator seeded with 0, so repeated calls agree). Results on CPU.
    """
    from tqdm import tqdm

    from .attacks import attack_for

    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    if attacks is None:
        attacks = [attack_for(t, strength) for t in threats]
    if len(attacks) != len(threats):
        raise ValueError("attacks and threats must have the same length")
    clean = clean_correct(model, x, y, batch_size, device)
    M = torch.zeros(len(x), len(threats), dtype=torch.bool)
    total = len(threats) * ((len(x) + batch_size - 1) // batch_size)
    with tqdm(total=total, disable=quiet, desc="attacks", unit="batch", dynamic_ncols=True) as bar:
        for j, attack in enumerate(attacks):
            bar.set_postfix(threat=getattr(threats[j], "name", str(j)))
            for s in _batches(len(x), batch_size):
                xb, yb = x[s].to(device), y[s].to(device)
                xa = attack(model, xb, yb, generator=generator)
                with torch.no_grad():
                    M[s, j] = (model(xa).argmax(1) == yb).cpu() & clean[s]
                bar.update(1)
    return M


def summarize(clean_correct: torch.Tensor, matrix: torch.Tensor, names) -> dict:
    """{"clean", "per_threat": {name: acc}, "union", "average", "n"} from the clean vector and the matrix."""
    names = list(names)
    if matrix.dim() != 2 or matrix.shape[1] != len(names) or matrix.shape[0] != clean_correct.shape[0]:
        raise ValueError(f"matrix {tuple(matrix.shape)} does not match {clean_correct.shape[0]} examples and "
                         f"{len(names)} names")
    M = matrix.bool() & clean_correct.bool()[:, None]
    per = {n: float(M[:, j].float().mean()) for j, n in enumerate(names)}
    return {
        "n": int(M.shape[0]),
        "clean": float(clean_correct.float().mean()),
        "per_threat": per,
        "union": float(M.all(1).float().mean()) if names else float(clean_correct.float().mean()),
        "average": float(sum(per.values()) / len(per)) if per else float("nan"),
    }


def format_table(names, values) -> str:
    """A two-column plain-text table."""
    names = [str(n) for n in names]
    w = max([len(n) for n in names] + [8])
    lines = [f"{'':{w}s}  accuracy", f"{'-' * w}  --------"]
    lines += [f"{n:{w}s}  {v:8.4f}" for n, v in zip(names, values)]
    return "\n".join(lines)


def summary_table(summary: dict) -> str:
    names = ["clean"] + list(summary["per_threat"]) + ["union", "average"]
    values = [summary["clean"]] + list(summary["per_threat"].values()) + [summary["union"], summary["average"]]
    return format_table(names, values)


def load_model(path, arch: str | None = None, dataset: str = "mnist"):
    """A model from a file: a checkpoint dict with "model" (a state dict) and optionally "model_name" or
    "config"["model"], or a plain state dict (architecture from ``arch``, a result.json beside it, or the
    dataset's default: mnist_cnn for MNIST-like data, preact_resnet18 for CIFAR-10)."""
    from .models import get_model

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} not found")
    obj = torch.load(path, map_location="cpu", weights_only=False)
    state, name = obj, arch
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        state = obj["model"]
        name = name or obj.get("model_name") or (obj.get("config") or {}).get("model")
    if name is None and (path.parent / "result.json").is_file():
        try:
            name = json.loads((path.parent / "result.json").read_text()).get("config", {}).get("model")
        except (OSError, ValueError):
            name = None
    if name is None:
        name = "preact_resnet18" if dataset.startswith("cifar10") else "mnist_cnn"
    model = get_model(name)
    model.load_state_dict(state)
    return model.eval(), name


def _parse_eps(text: str | None) -> dict:
    out = {}
    if not text:
        return out
    for item in text.split(","):
        key, sep, val = item.partition("=")
        if not sep:
            raise ValueError(f"--eps items must look like name=value, got {item!r}")
        if key == "rt":
            a, _, s = val.partition("/")
            out[key] = (float(a), float(s or 0))
        else:
            out[key] = float(val)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m empirical.evaluate",
                                description="Per-threat and union robust accuracy of a trained model.")
    p.add_argument("--model", required=True, help="checkpoint or state-dict file")
    p.add_argument("--arch", default=None, help="model name when the file does not say (see empirical.models)")
    p.add_argument("--dataset", default="mnist", choices=("mnist", "fashion_mnist", "cifar10", "cifar10_jpeg"))
    p.add_argument("--data-dir", default=None, help="data folder (default $ADVTRAIN_DATA_DIR or ../shared/data)")
    p.add_argument("--threats", default="linf,l1,l2,rt",
                   help="comma-separated: linf, l2, l1, rt, affine:<a>:<b>[:beta]")
    p.add_argument("--eps", default=None, help="budget overrides, e.g. linf=0.2,l1=8,rt=30/3")
    p.add_argument("--strength", default="eval", choices=("train", "eval"))
    p.add_argument("--n", type=int, default=1000, help="test images (the first n)")
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sanity", type=int, default=0, metavar="N",
                   help="run the gradient-masking self-checks (empirical.gradient_masking) on the first N images per l_p threat")
    p.add_argument("--out", default=None, help="JSON result file")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    from .data import DataError, load_dataset
    from .threats import get_threat
    from .utils import get_device, make_generator, set_threads

    if args.n < 1 or args.batch_size < 1:
        p.error("--n and --batch-size must be >= 1")
    if args.sanity < 0:
        p.error("--sanity must be >= 0")
    if args.seed < 0:
        p.error("--seed must be >= 0")
    try:
        eps = _parse_eps(args.eps)
        tdata = "cifar10" if args.dataset.startswith("cifar10") else args.dataset
        names = [t for t in args.threats.split(",") if t]
        if not names:
            raise ValueError("--threats is empty")
        threats = [get_threat(n, tdata, eps=eps.get(n)) for n in names]
        device = get_device(args.device)
    except ValueError as exc:
        p.error(str(exc))
    set_threads(args.threads)
    try:
        x, y = load_dataset(args.dataset, args.data_dir, "test", args.n)
    except DataError as exc:
        p.error(str(exc))
    try:
        model, arch = load_model(args.model, args.arch, args.dataset)
    except (FileNotFoundError, RuntimeError, ValueError, KeyError) as exc:
        p.error(f"--model: {exc}")
    model = model.to(device)
    t0 = time.time()
    clean = clean_correct(model, x, y, args.batch_size, device)
    M = robustness_matrix(model, x, y, threats, args.strength, args.batch_size, make_generator(args.seed), device,
                          quiet=args.quiet)
    summary = summarize(clean, M, names)
    print(summary_table(summary))
    checks = {}
    if args.sanity > 0:
        from .gradient_masking import gradient_masking_warnings
        from .threats import L1Ball, L2Ball, LinfBall

        xs, ys = x[:args.sanity].to(device), y[:args.sanity].to(device)
        for n, t in zip(names, threats):
            if isinstance(t, (LinfBall, L2Ball, L1Ball)):
                checks[n] = gradient_masking_warnings(model, xs, ys, t, generator=make_generator(args.seed))
                for w in checks[n]:
                    print(f"warning: {w}", file=sys.stderr)
    if args.out:
        from .attacks import attack_for
        from simulate.provenance import provenance, write_json

        write_json(args.out, {
            "summary": summary, "threats": names, "gradient_masking_warnings": checks,
            "clean_correct": clean.int().tolist(), "robust_matrix": M.int().tolist(),
            "provenance": provenance(
                params={"model_file": str(args.model), "arch": arch, "dataset": args.dataset, "n": len(x),
                        "threats": {n: repr(t) for n, t in zip(names, threats)},
                        "attacks": {n: repr(attack_for(t, args.strength)) for n, t in zip(names, threats)},
                        "strength": args.strength, "batch_size": args.batch_size},
                seeds={"attack": args.seed}, device=str(device), seconds=time.time() - t0),
        })
        if not args.quiet:
            print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
