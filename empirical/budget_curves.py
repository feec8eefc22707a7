"""Accuracy versus budget, per threat, for the models of a reproduction table.

    python -m empirical.budget_curves --runs runs/mnist_cpu-long --jobs 2 --test-limit 100 --out curves.json
    python -m empirical.budget_curves --runs runs/mnist_cpu-long --eps linf=0.1,linf=0.2,l2=1 --out curves.json

For every trained run under ``--runs`` (one folder per scheme, each with ``model.pt``, as written by
``python -m empirical.reproduce``) and every threat of ``--threats``, the robust accuracy on the first
``--test-limit`` test images at each budget of ``--eps`` (the common budget syntax with a name repeated
once per budget; budget 0 is the clean accuracy), under the evaluation module's attacks of strength
``--strength`` (default 'eval': APGD-CE, APGD-T, FAB-T, Square).  The JSON has, per table row,
{threat: {"eps": [...], "accuracy": [...]}}, with provenance; ``figures`` draws it beside the table.

Budgets are nested: where a budget is at least the one before it, only the examples still robust at the
smaller budget are attacked (an adversarial example inside the smaller ball lies inside the larger one), so a
curve never rises with the budget and the large budgets cost only what the small ones left robust.  After every
(model, threat) the curves so far go to ``<out>.part``; a rerun of the same command resumes from it.

Every (model, threat) curve is seeded by ``--seed`` alone, so the curves do not depend on their order:
``--jobs N`` computes N of them at a time in worker processes (each with its own copy of the models and
images, ``--threads`` torch threads each) and gives the same file as ``--jobs 1``.
"""

from __future__ import annotations

import json

import torch

from .cli import ROW_OF  # the rows of empirical.reproduce and the run folders they live in
from .data import load_cifar10, load_mnist
from .evaluate import clean_correct, load_model, robustness_matrix
from .threats import budget_table, get_threat
from simulate.cli import command

__all__ = ["DEFAULT_BUDGETS", "budget_curve", "main"]

DEFAULT_BUDGETS = {
    "mnist": {"linf": [0.1, 0.2, 0.3, 0.4], "l1": [2.5, 5.0, 10.0, 15.0], "l2": [0.5, 1.0, 2.0, 3.0]},
    "cifar10": {"linf": [2 / 255, 4 / 255, 8 / 255, 16 / 255], "l1": [3.0, 6.0, 12.0, 24.0],
                "l2": [0.125, 0.25, 0.5, 1.0]},
}


def _suite_names(strength: str, threats) -> dict:
    """The attacks of the suite per threat (recorded beside the strength: what 'eval' means changes over time)."""
    from .attacks import attack_for
    from .attacks.worst_of import WorstOf

    out = {}
    for t in threats:
        a = attack_for(get_threat(t), strength)
        out[t] = a.names() if isinstance(a, WorstOf) else [a.name]
    return out


def _test_images(dataset: str, data_dir, limit: int):
    """The first ``limit`` test images and labels of ``dataset`` (CIFAR-10: the lossless subset)."""
    if dataset == "mnist":
        return load_mnist(data_dir, "test", limit=limit)
    return load_cifar10(data_dir, "test", source="subset", limit=limit)


def budget_curve(model, x, y, threat: str, budgets, dataset: str, strength: str, seed: int,
                 batch_size: int) -> dict:
    """Robust accuracy at each budget (the first entry, budget 0, is the clean accuracy).

    A numeric budget at least as large as the one before it attacks only the examples still robust there
    (nested balls); any other budget attacks every correctly classified example."""
    clean = clean_correct(model, x, y, batch_size)
    eps, acc = [0.0], [float(clean.float().mean())]
    robust, previous = clean, None
    for e in budgets:  # a number, or (max angle, max shift) for rt
        t = get_threat(threat, dataset, eps=e)
        numeric = isinstance(e, (int, float))
        nested = numeric and previous is not None and e >= previous
        idx = torch.nonzero(robust if nested else clean).flatten()
        robust = torch.zeros(len(x), dtype=torch.bool)
        if len(idx):
            M = robustness_matrix(model, x[idx], y[idx], [t], strength=strength, batch_size=batch_size,
                                  generator=torch.Generator().manual_seed(seed))
            robust[idx] = M[:, 0]
        previous = e if numeric else None
        eps.append(float(e) if numeric else list(e))
        acc.append(float(robust.float().mean()))
    return {"eps": eps, "accuracy": acc}


def build_parser():
    from .cli import ArgumentParser, add_common, eps_list_type, number, path_type, ranged, state_ranges

    p = ArgumentParser(prog="python -m empirical.budget_curves", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=path_type, required=True, metavar="DIR",
                   help="folder of the runs (one sub-folder per scheme, each with model.pt)")
    add_common(p, dataset=("mnist", "cifar10", "cifar10_jpeg"))
    p.add_argument("--threats", default="linf,l1,l2", metavar="LIST", help="comma-separated [default: linf,l1,l2]")
    p.add_argument("--eps", type=eps_list_type, default=None, metavar="BUDGETS",
                   help="budgets per threat, a name once per budget, e.g. linf=0.1,linf=0.2,l1=5"
                        "; an ascending budget attacks only what the one before it left robust "
                        "[default: the dataset's four per threat, DEFAULT_BUDGETS]")
    p.add_argument("--test-limit", type=ranged("test_limit"), default=100, metavar="N",
                   help="test images (the first N) [default: 100]")
    p.add_argument("--strength", default="eval", choices=("train", "apgd", "eval"),
                   help="attacks: eval (AutoAttack's standard suite), apgd (APGD-CE + APGD-T only), train "
                        "[default: eval]")
    p.add_argument("--batch-size", type=ranged("batch_size"), default=100, metavar="N", help="[default: 100]")
    p.add_argument("--jobs", type=number(int, 1, 64, why="curves at a time; each worker is a process with its own "
                                                       "models and images"),
                   default=1, metavar="N",
                   help="(model, threat) curves at a time, in worker processes (CPU: cores; one GPU: 1) "
                        "[default: 1]")
    p.add_argument("--out", type=path_type, required=True, metavar="FILE",
                   help="JSON result file; FILE.part holds the curves so far, from which the same command resumes")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return state_ranges(p)


@command
def main(argv=None) -> int:
    from tqdm import tqdm

    from simulate.provenance import provenance, write_json

    from .checkpoint import CheckpointError
    from .cli import claim_output
    from .data import DataError
    from .utils import get_device, set_threads

    p = build_parser()
    args = p.parse_args(argv)
    claim_output(p, "--out", args.out, overwrite=args.overwrite)
    if not args.runs.is_dir():
        p.error(f"--runs: folder {str(args.runs)!r} not found")
    runs = sorted(d for d in args.runs.iterdir() if (d / "model.pt").is_file())
    if not runs:
        p.error(f"--runs: no sub-folder of {str(args.runs)!r} holds a model.pt")
    budgets = args.eps or DEFAULT_BUDGETS[budget_table(args.dataset)]
    threats = [t.strip() for t in args.threats.split(",") if t.strip()]
    if not threats:
        p.error("--threats: empty list (allowed: linf, l1, l2, rt)")
    missing = [t for t in threats if t not in budgets]
    if missing:
        p.error(f"--eps: no budgets for the threats {missing} (give e.g. {missing[0]}=<value>)")
    device = get_device(args.device)
    try:
        models = {run: load_model(run / "model.pt", dataset=args.dataset)[0].to(device) for run in runs}
    except CheckpointError as exc:
        p.error(f"--runs: {exc}")
    set_threads(args.threads)
    try:
        x, y = _test_images(args.dataset, args.data_dir, args.test_limit)
    except DataError as exc:
        p.error(f"--data-dir: {exc}")
    params = {"runs": str(args.runs), "dataset": args.dataset, "n_test": int(x.shape[0]),
              "strength": args.strength, "attacks": _suite_names(args.strength, threats),
              "budgets": {t: budgets[t] for t in threats}, "threats": threats, "nested": True}
    part = args.out.with_name(args.out.name + ".part")
    curves = _resumed(part, params, args.seed, [ROW_OF.get(r.name, r.name) for r in runs], threats)
    if curves and not args.quiet:
        print(f"resuming from {part}: {sum(map(len, curves.values()))} curves done", flush=True)
    todo = [(run, t) for run in runs for t in threats if t not in curves.get(ROW_OF.get(run.name, run.name), {})]
    try:
        if args.jobs == 1 or len(todo) <= 1:
            for run in tqdm(runs, disable=args.quiet, desc="models"):
                row = ROW_OF.get(run.name, run.name)
                done = curves.setdefault(row, {})
                for t in threats:
                    if t not in done:
                        done[t] = budget_curve(models[run], x, y, t, budgets[t], args.dataset, args.strength,
                                               args.seed, args.batch_size)
                        write_json(part, {"params": params, "seed": args.seed, "curves": curves})
                if not args.quiet:
                    print(row, {t: [round(a, 3) for a in c["accuracy"]] for t, c in done.items()}, flush=True)
        else:
            def finished(row, t, curve):
                curves.setdefault(row, {})[t] = curve
                write_json(part, {"params": params, "seed": args.seed, "curves": curves})
                if not args.quiet:
                    print(row, t, [round(a, 3) for a in curve["accuracy"]], flush=True)

            _in_workers(todo, args, budgets, device, finished)
    except KeyboardInterrupt as exc:
        if part.is_file():
            exc.checkpoint = part  # the command's handler names it and exits UNFINISHED
        raise
    # rows in folder order and threats in --threats order, however the workers finished
    curves = {ROW_OF.get(r.name, r.name): {t: curves[ROW_OF.get(r.name, r.name)][t] for t in threats} for r in runs}
    write_json(args.out, {"curves": curves, "params": params,
                          "provenance": provenance(params=params, seeds={"seed": args.seed})})
    part.unlink(missing_ok=True)
    return 0


# worker processes of --jobs: the models and the images, loaded once per worker by _worker_init
_WORKER: dict = {}


def _worker_init(runs, dataset: str, data_dir, test_limit: int, device: str, threads) -> None:
    import threading

    from tqdm import tqdm

    from .utils import set_threads

    # tqdm's default lock is a multiprocessing semaphore, which a worker stopped by an interruption would leave
    # registered (a "leaked semaphore" warning at exit); a worker's bars need only a thread lock
    tqdm.set_lock(threading.RLock())
    set_threads(threads)
    _WORKER["models"] = {run.name: load_model(run / "model.pt", dataset=dataset)[0].to(device) for run in runs}
    _WORKER["xy"] = _test_images(dataset, data_dir, test_limit)


def _worker_curve(name: str, threat: str, budgets, dataset: str, strength: str, seed: int, batch_size: int):
    x, y = _WORKER["xy"]
    return budget_curve(_WORKER["models"][name], x, y, threat, budgets, dataset, strength, seed, batch_size)


def _in_workers(todo, args, budgets, device, finished) -> None:
    """The curves of ``todo`` ((run folder, threat) pairs), ``args.jobs`` at a time in spawned processes;
    ``finished(row, threat, curve)`` as each one ends.  An interruption cancels the pairs not yet started."""
    import multiprocessing
    import os
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from tqdm import tqdm

    runs = sorted({run for run, _ in todo})
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)  # torch's default would oversubscribe
    pool = ProcessPoolExecutor(max_workers=min(args.jobs, len(todo)), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init,
                               initargs=(runs, args.dataset, args.data_dir, args.test_limit, str(device), threads))
    try:
        pending = {pool.submit(_worker_curve, run.name, t, budgets[t], args.dataset, args.strength, args.seed,
                               args.batch_size): (run, t) for run, t in todo}
        with tqdm(total=len(todo), disable=args.quiet, desc="curves") as bar:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    run, t = pending.pop(f)
                    finished(ROW_OF.get(run.name, run.name), t, f.result())
                    bar.update()
    except BaseException:
        # an interruption (or a worker's failure) ends the curves still running at once: their workers are
        # stopped rather than awaited (concurrent.futures has no public call for this; _processes is its map)
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _resumed(part, params: dict, seed: int, rows, threats) -> dict:
    """The curves of an interrupted run of the same command (``part`` written by :func:`main`), else {}.  The
    file is data: read bounded, and used only when its parameters equal these and every curve has its shape."""
    from simulate.core.outputs import read_json

    if not part.is_file():
        return {}
    try:
        old = read_json(part)
    except (OSError, ValueError):
        return {}
    if not isinstance(old, dict) or old.get("params") != json.loads(json.dumps(params)) or old.get("seed") != seed:
        return {}
    curves = old.get("curves")
    if not isinstance(curves, dict):
        return {}
    n = {t: len(params["budgets"][t]) + 1 for t in threats}
    keep = {}
    for row, per in curves.items():
        if row in rows and isinstance(per, dict):
            keep[row] = {t: c for t, c in per.items() if t in n and isinstance(c, dict)
                         and len(c.get("eps", ())) == n[t] and len(c.get("accuracy", ())) == n[t]}
    return keep


if __name__ == "__main__":
    raise SystemExit(main())
