"""Robustness to several threats at once: a per-example x per-threat boolean matrix, and its summary.

    python -m empirical.evaluate --weights runs/mnist_max/model.pt --threats linf,l1,l2,rt --test-limit 1000

Definitions (RobustBench / Tramer & Boneh 2019 conventions): example i is *robust to threat j* when it is
correctly classified clean AND at the point returned by threat j's evaluation attack (``attack_for(threat,
strength)``; ``--strength eval``, the default: AutoAttack's standard suite APGD-CE, APGD-T, FAB-T, Square for
l_p balls, full grid for rotation-translation; ``--strength apgd``: APGD-CE + APGD-T only, cheaper, and blind
to gradient masking). Then

    clean accuracy     = mean_i clean_i
    threat-j accuracy  = mean_i M_ij
    union accuracy     = mean_i AND_j M_ij       (robust to every threat at once)
    average accuracy   = mean_j (threat-j accuracy)

so union <= every single-threat accuracy <= clean accuracy by construction. Budgets default to the
literature's (:data:`empirical.threats.DEFAULT_BUDGETS`); ``--eps linf=0.2,l1=8,rt=30/3`` overrides them
(the budget syntax of every empirical command, :mod:`empirical.cli`).
The JSON written by ``--out`` holds the summary (with the strength that produced it), the matrix itself, the
per-example attack log and provenance. The attack log (:func:`attack_log`) says, for every example and threat,
which attack of the suite broke it first ("apgd-ce", "apgd-t", "fab-t", "square"; "robust" if none did,
"clean_wrong" if the clean image is misclassified), with the test-set index of every example: union accuracy
is the fraction of examples that are "robust" under every threat, and the examples that FAB-T and Square
decided are those that name them.

With ``--out``, the progress goes to ``OUT.part`` after every batch (columns so far, generator state): a run
stopped by Ctrl-C, SIGTERM or ``--time-limit SECONDS`` (exit 75) resumes when the same command is run again,
with the result an uninterrupted run gives; the file is removed once ``OUT`` is written.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from simulate.cli import command
from simulate.core.outputs import read_json

__all__ = ["robustness_matrix", "robustness_matrix_and_log", "TimeLimitReached", "attack_log", "clean_correct",
           "summarize", "format_table", "load_model", "progress_file", "progress_params", "data_digest", "main"]


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
    return robustness_matrix_and_log(model, x, y, threats, strength, batch_size, generator, device, attacks,
                                     quiet)[0]


def robustness_matrix_and_log(model, x, y, threats, strength: str = "eval", batch_size: int = 256,
                              generator: torch.Generator | None = None, device=None, attacks=None,
                              quiet: bool = True, part=None, params: dict | None = None,
                              time_limit: float | None = None):
    """(M, first, names): M as :func:`robustness_matrix`; ``first`` int64 [n, k] the index (in ``names[j]``,
    the attacks of threat j's suite in order) of the attack that first broke example i under threat j, -1 if
    none did, -2 if the clean example is misclassified.

    ``part``: a JSON file that holds the progress after every batch (the columns so far and the generator's
    state), so that a long evaluation resumes where it stopped: a call with the same ``part`` and the same
    ``params`` (JSON data that name the evaluation: weights, images, attacks, seed; the caller's) skips the
    batches it holds and continues from the generator state it saved, which gives the uninterrupted call's
    result (on the same device).  A ``part`` written for other ``params`` is ignored and overwritten.  With
    ``part``, Ctrl-C or SIGTERM stops at the next batch boundary (:class:`simulate.cli.Interrupted`, naming
    it) and ``time_limit`` (seconds of this call) stops there too (:class:`TimeLimitReached`); the caller
    removes ``part`` once its result is written."""
    import contextlib

    from tqdm import tqdm

    from simulate.core.cli import Interrupted, deferred_stop
    from simulate.provenance import write_json

    from .attacks import attack_for
    from .attacks.worst_of import CLEAN_WRONG, ROBUST, WorstOf

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
    first = torch.full((len(x), len(threats)), ROBUST, dtype=torch.long)
    names = [a.names() if isinstance(a, WorstOf) else [a.name.replace("_", "-")] for a in attacks]
    total = len(threats) * ((len(x) + batch_size - 1) // batch_size)
    key = _part_key(params, len(x), len(threats), batch_size)
    done = _resume(part, key, M, first, generator, total, quiet) if part is not None else 0
    t0, unit = time.monotonic(), 0
    with contextlib.ExitStack() as stack:
        request = stack.enter_context(deferred_stop()) if part is not None else None
        bar = stack.enter_context(tqdm(total=total, initial=done, disable=quiet, desc="attacks", unit="batch",
                                       dynamic_ncols=True))
        for j, attack in enumerate(attacks):
            bar.set_postfix(threat=getattr(threats[j], "name", str(j)))
            for s in _batches(len(x), batch_size):
                unit += 1
                if unit <= done:
                    continue
                xb, yb = x[s].to(device), y[s].to(device)
                if isinstance(attack, WorstOf):
                    xa, fb = attack.perturb_log(model, xb, yb, generator=generator)
                else:
                    xa = attack(model, xb, yb, generator=generator)
                    fb = None
                with torch.no_grad():
                    still = (model(xa).argmax(1) == yb).cpu()
                M[s, j] = still & clean[s]
                if fb is None:
                    fb = torch.where(still, ROBUST, 0)
                # the clean prediction decides "clean_wrong" (the same as in M)
                first[s, j] = torch.where(clean[s], torch.where(still, ROBUST, fb.clamp_min(0)), CLEAN_WRONG)
                bar.update(1)
                if part is None:
                    continue
                write_json(part, {"key": key, "batches_done": unit, "batches": total,
                                  "M": M.int().tolist(), "first": first.tolist(),
                                  "generator": generator.get_state().tolist()})
                if unit < total and request:
                    raise Interrupted(part, signum=request.signum)
                if unit < total and time_limit is not None and time.monotonic() - t0 >= time_limit:
                    raise TimeLimitReached(part, unit, total)
    return M, first, names


class TimeLimitReached(Exception):
    """An evaluation stopped by its ``time_limit`` with its progress in ``part``: run the same call again."""

    def __init__(self, part, done: int, total: int):
        super().__init__(f"stopped by --time-limit after {done} of {total} batches; progress in {str(part)!r}: "
                         "run the same command again to resume")
        self.part, self.done, self.total = part, done, total


def _part_key(params, n: int, k: int, batch_size: int) -> dict:
    """What a progress file must match to be resumed: the caller's params and the shape of the work."""
    import json

    return json.loads(json.dumps({"params": params, "n": n, "columns": k, "batch_size": batch_size}))


def _resume(part, key: dict, M, first, generator, total: int, quiet: bool) -> int:
    """Load the progress file ``part`` into ``M``, ``first`` and ``generator`` when it belongs to ``key``; the
    number of batches it holds (0 when there is none, or it is another evaluation's or damaged).  The file is
    data: read bounded (:func:`simulate.core.outputs.read_json`) and checked entry by entry before use."""
    part = Path(part)
    if not part.is_file():
        return 0
    try:
        d = read_json(part)
        ok = (isinstance(d, dict) and d.get("key") == key and d.get("batches") == total
              and isinstance(d.get("batches_done"), int) and 0 < d["batches_done"] <= total)
        if ok:
            m = torch.tensor(d["M"], dtype=torch.bool)
            f = torch.tensor(d["first"], dtype=torch.long)
            g = torch.tensor(d["generator"], dtype=torch.uint8)
            ok = m.shape == M.shape and f.shape == first.shape and g.shape == generator.get_state().shape
    except (OSError, ValueError, TypeError, RuntimeError):
        ok = False
    if not ok:
        if not quiet:
            print(f"note: {str(part)!r} is not the progress of this evaluation; starting afresh", file=sys.stderr)
        return 0
    M.copy_(m)
    first.copy_(f)
    generator.set_state(g)
    if not quiet:
        print(f"resuming from {str(part)!r}: {d['batches_done']} of {total} batches done", file=sys.stderr)
    return d["batches_done"]


def attack_log(first: torch.Tensor, names, threat_names, index=None) -> dict:
    """The per-example attack log as JSON-ready data: {"example_index": [test-set index per example],
    "attacks": {threat: [attack names in order]}, "first_broken_by": {threat: [attack name, "robust" or
    "clean_wrong" per example]}, "broken_by_attack": {threat: {attack: count}}}."""
    n = first.shape[0]
    index = list(range(n)) if index is None else [int(i) for i in index]
    out = {"example_index": index, "attacks": {}, "first_broken_by": {}, "broken_by_attack": {}}
    for j, t in enumerate(threat_names):
        col = first[:, j].tolist()
        labels = [("robust" if c == -1 else "clean_wrong" if c == -2 else names[j][c]) for c in col]
        out["attacks"][t] = list(names[j])
        out["first_broken_by"][t] = labels
        out["broken_by_attack"][t] = {a: labels.count(a) for a in names[j]}
    return out


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
    dataset's default: mnist_cnn for MNIST-like data, preact_resnet18 for CIFAR-10).

    The file is read with ``weights_only=True``; a missing, corrupt or mismatched file raises
    :class:`empirical.checkpoint.CheckpointError` with a one-line message."""
    from .checkpoint import CheckpointError, read_torch_file
    from .models import MODELS, get_model

    path = Path(path)
    obj = read_torch_file(path, what="model file")
    state, name = obj, arch
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        state = obj["model"]
        name = name or obj.get("model_name") or (obj.get("config") or {}).get("model")
    if name is None and (path.parent / "result.json").is_file():
        try:
            name = read_json(path.parent / "result.json").get("config", {}).get("model")
        except (OSError, ValueError, AttributeError):
            name = None
    if name is None:
        name = "preact_resnet18" if dataset.startswith("cifar10") else "mnist_cnn"
    if name not in MODELS:
        raise CheckpointError(f"model file {str(path)!r} names an unknown architecture {name!r}")
    model = get_model(name)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(f"model file {str(path)!r} does not hold a state dict of {name!r}: {first}") from None
    return model.eval(), name


DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar10_jpeg")


def build_parser():
    from .attacks import STRENGTHS
    from .cli import ArgumentParser, add_common, eps_type, number, path_type, ranged, state_ranges
    from .models import MODELS

    p = ArgumentParser(prog="python -m empirical.evaluate",
                       description="Per-threat and union robust accuracy of a trained model.")
    p.add_argument("--weights", type=path_type, required=True, metavar="FILE",
                   help="model file: a state dict (model.pt of empirical.train) or a checkpoint dict")
    p.add_argument("--model", default=None, choices=MODELS,
                   help="architecture when the file does not say (see empirical.models) [default: from the file, "
                        "a result.json beside it, or the dataset's]")
    add_common(p, dataset=DATASETS)
    p.add_argument("--threats", default="linf,l1,l2,rt", metavar="LIST",
                   help="comma-separated: linf, l2, l1, rt, affine:<a>:<b>[:beta] [default: linf,l1,l2,rt]")
    p.add_argument("--eps", type=eps_type, default={}, metavar="BUDGETS",
                   help="budgets, e.g. linf=0.2,l1=8,rt=30/3 [default: the dataset's]")
    p.add_argument("--strength", default="eval", choices=STRENGTHS,
                   help="attacks: eval (AutoAttack's standard suite: APGD-CE, APGD-T, FAB-T, Square), apgd (APGD-CE + "
                        "APGD-T only: quicker, blind to gradient masking), train (the training attacks) [default: eval]")
    p.add_argument("--test-limit", type=ranged("test_limit"), default=1000, metavar="N",
                   help="evaluate on the first N test images [default: 1000]")
    p.add_argument("--batch-size", type=ranged("batch_size"), default=250, metavar="N", help="[default: 250]")
    p.add_argument("--sanity", type=number(int, 0, 10000, why="at most the test split's 10,000 images"), default=0,
                   metavar="N", help="run the gradient-masking self-checks (empirical.gradient_masking) on the first N "
                                     "images per l_p threat [default: 0, none]")
    p.add_argument("--out", type=path_type, default=None, metavar="FILE",
                   help="JSON result file [default: none, print only]")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--time-limit", type=ranged("time_limit"), default=None, metavar="SECONDS",
                   help="with --out: stop at the first batch boundary after this many seconds, progress in "
                        "OUT.part, exit 75; the same command resumes [default: none]")
    return state_ranges(p)


@command
def main(argv=None) -> int:
    from simulate.core.cli import UNFINISHED

    from .checkpoint import CheckpointError
    from .cli import claim_output
    from .data import DataError, load_dataset
    from .threats import LpThreat, make_threats
    from .utils import get_device, make_generator, set_threads

    p = build_parser()
    args = p.parse_args(argv)
    if args.out is not None:
        claim_output(p, "--out", args.out, overwrite=args.overwrite)
    names = [t.strip() for t in args.threats.split(",") if t.strip()]
    if not names:
        p.error("--threats: empty list (allowed: linf, l2, l1, rt, affine:<a>:<b>[:beta])")
    try:
        threats = make_threats(names, args.dataset, args.eps)
    except ValueError as exc:
        p.error(f"--threats: {exc}")
    device = get_device(args.device)
    try:
        model, arch = load_model(args.weights, args.model, args.dataset)
    except CheckpointError as exc:
        p.error(f"--weights: {exc}")
    set_threads(args.threads)
    try:
        x, y = load_dataset(args.dataset, args.data_dir, "test", args.test_limit)
    except DataError as exc:
        p.error(f"--data-dir: {exc}")
    if args.time_limit is not None and args.out is None:
        p.error("--time-limit: needs --out (the progress is kept beside it, in OUT.part)")
    model = model.to(device)
    t0 = time.time()
    clean = clean_correct(model, x, y, args.batch_size, device)
    from .attacks import attack_for

    part = progress_file(args.out)
    params = progress_params(args.weights, x, y, device, seed=args.seed, dataset=args.dataset,
                             threats=[repr(t) for t in threats], strength=args.strength)
    try:
        M, first, attack_names = robustness_matrix_and_log(model, x, y, threats, args.strength, args.batch_size,
                                                           make_generator(args.seed), device, quiet=args.quiet,
                                                           part=part, params=params, time_limit=args.time_limit)
    except TimeLimitReached as exc:
        print(f"{p.prog}: {exc}", file=sys.stderr)
        return UNFINISHED
    summary = summarize(clean, M, names)
    summary["strength"] = args.strength
    if not args.quiet:
        print(f"strength: {args.strength}")
        print(summary_table(summary))
    checks = {}
    if args.sanity > 0:
        from .gradient_masking import gradient_masking_warnings

        xs, ys = x[:args.sanity].to(device), y[:args.sanity].to(device)
        for n, t in zip(names, threats):
            if isinstance(t, LpThreat):
                checks[n] = gradient_masking_warnings(model, xs, ys, t, generator=make_generator(args.seed))
                for w in checks[n]:
                    print(f"warning: {w}", file=sys.stderr)
    if args.out:
        from simulate.provenance import provenance, write_json

        write_json(args.out, {
            "summary": summary, "threats": names, "gradient_masking_warnings": checks,
            "clean_correct": clean.int().tolist(), "robust_matrix": M.int().tolist(),
            "attack_log": attack_log(first, attack_names, names),
            "provenance": provenance(
                params={"weights": str(args.weights), "model": arch, "dataset": args.dataset, "n_test": len(x),
                        "threats": {n: repr(t) for n, t in zip(names, threats)},
                        "attacks": {n: repr(attack_for(t, args.strength)) for n, t in zip(names, threats)},
                        "strength": args.strength, "batch_size": args.batch_size},
                seeds={"attack": args.seed}, device=str(device), seconds=time.time() - t0),
        })
        part.unlink(missing_ok=True)
        if not args.quiet:
            print(f"wrote {args.out}", file=sys.stderr)
    return 0


def progress_file(out) -> Path | None:
    """Where an evaluation writing ``out`` keeps its progress: ``OUT.part`` beside it (None without ``out``)."""
    return None if out is None else Path(out).with_name(Path(out).name + ".part")


def progress_params(weights, x: torch.Tensor, y: torch.Tensor, device, **extra) -> dict:
    """The ``params`` that name an evaluation for its progress file: the weights file's and the data's SHA-256, the
    device type and the caller's ``extra`` (attacks, seed, ...)."""
    from simulate.core.outputs import file_sha256

    return {"weights_sha256": file_sha256(weights), "data": data_digest(x, y), "device": torch.device(device).type,
            **extra}


def data_digest(x: torch.Tensor, y: torch.Tensor) -> str:
    """SHA-256 of the images and labels (their bytes, shapes and dtypes): names the data a progress file is for."""
    import hashlib

    h = hashlib.sha256()
    for t in (x, y):
        t = t.detach().cpu().contiguous()
        h.update(f"{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


if __name__ == "__main__":
    raise SystemExit(main())
