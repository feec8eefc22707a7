"""The multi-perturbation reproduction table: train every scheme, evaluate it, write one JSON table.

    # GPU, the full MNIST reproduction (60k images, preset epochs, 1,000 test images, the full suite):
    python -m empirical.reproduce --dataset mnist --preset full --out results/mnist_table.json
    # GPU, CIFAR-10 (PreAct ResNet-18 on the JPEG set, evaluated on the lossless 1,000-image subset):
    python -m empirical.reproduce --dataset cifar10_jpeg --preset full --schemes msd,mng_ac,sat \\
        --out results/cifar10_table.json
    # CPU, the reduced run of this repository's results/mnist_cpu_full_suite_table.json:
    nice -n 10 python -m empirical.reproduce --dataset mnist --preset cpu --jobs 2 --out results/mnist_cpu_full_suite_table.json
    # CPU, the longest run that fits a few hours of two cores (results/mnist_cpu_long_full_suite_table.json):
    python -m empirical.reproduce --dataset mnist --preset cpu-long --jobs 2 --out results/mnist_cpu_long_full_suite_table.json

Each scheme is a separate ``python -m empirical.train`` process (``--jobs`` at a time), so every run is
resumable: rerunning the command skips finished runs and resumes interrupted ones from their checkpoints
(runs live under ``--runs``).  Evaluation (``python -m empirical.train --evaluate-only``) uses the
evaluation module's full suite (strength 'eval': APGD-CE, APGD-T, FAB-T, Square, AutoAttack's standard
sequence per l_p norm, each attack on the points still robust) on the first ``--test-limit`` test images;
union accuracy is the AND over the threats, per example.  Each row carries ``broken_by_attack``: per threat,
how many examples each attack broke first (the per-example log is in the run's eval.json).

Presets (``PRESETS``):
  full  the whole training set, the dataset's preset epochs and the training attacks' default steps
        (PGD/SLIDE-10), 1,000 test images;
  cpu   5,000 training images, 1 epoch of batches of 50 (100 steps), 5-step training attacks, 100 test
        images (what fits in about an hour of two CPU cores shared with other jobs; stated in the table);
  cpu-long  the whole 60,000-image training set for 1 epoch (600 steps of batch 100) with the training
        attacks' default steps (PGD/SLIDE-10), on the 4.7x cheaper ``mnist_cnn_small``, budgets warmed up
        over the first 40% of the steps (without it 'max' stalled at the uniform prediction for the whole
        epoch), 500 test images (55 minutes of two CPU cores: the longest CPU run that fits about an
        hour without a GPU).

Under a per-command time limit pass ``--time-limit SECONDS``: training stops cleanly at a checkpoint
before the limit, no evaluation starts with less than ``EVAL_RESERVE`` seconds left, and the command exits
with status 75 (the convention of every command: "unfinished, checkpoint written, run the same command
again"); the table is written by the call that finishes the last run.

Schemes are started most expensive first (``COST_ORDER``), so that ``--jobs`` workers finish together;
the table lists them in the order of ``SCHEMES_TABLE``.

Rows measured by separate calls (other ``--runs`` folders, another machine) go into one table with
``--merge TABLE [TABLE ...] --out FILE``: the tables must come from this command with the same parameters
(dataset, preset, training flags, seed, test images, evaluation, budgets); a row in more than one of them must
be the same measurement (equal apart from ``wall_seconds_this_call``).  The merged table keeps every row as
written, in the order of ``SCHEMES_TABLE``, and its provenance names each merged file with that file's own
provenance (``merged_from``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from simulate.cli import UNFINISHED
from simulate.core.outputs import read_json

from .cli import ArgumentParser, claim_output, device_type, number, path_type, ranged, state_ranges
from simulate.cli import command

__all__ = ["PRESETS", "SCHEMES_TABLE", "PUBLISHED", "MergeError", "merge_tables", "main"]

ROOT = Path(__file__).resolve().parent.parent

#: (row name, scheme, threats) of the table.
SCHEMES_TABLE = {
    "Nat": ("natural", ""), "Adv_inf": ("adv", "linf"), "Adv_1": ("adv", "l1"), "Adv_2": ("adv", "l2"),
    "avg": ("avg", "linf,l1,l2"), "max": ("max", "linf,l1,l2"), "MSD": ("msd", "linf,l1,l2"),
    "SAT": ("sat", "linf,l1,l2"), "MNG-AC": ("mng_ac", "linf,l1,l2"),
}

PRESETS = {
    "full": {"train": [], "test_limit": 1000,
             "note": "full reproduction: whole training set, preset epochs, PGD/SLIDE-10 training attacks"},
    "cpu": {"train": ["--train-limit", "5000", "--epochs", "1", "--batch-size", "50", "--attack-steps", "5"],
            "test_limit": 100,
            "note": "REDUCED CPU RUN (no GPU): 5,000 MNIST training images, 1 epoch (100 steps of batch 50), "
                    "5-step training attacks, evaluation on the first 100 test images; not comparable in "
                    "training budget with the published numbers (tens of epochs on 60,000 images)"},
    "cpu-long": {"train": ["--model", "mnist_cnn_small", "--epochs", "1", "--batch-size", "100",
                           "--eps-warmup", "0.4"],
                 "test_limit": 500,
                 "note": "LONGEST CPU RUN THAT FITS (no GPU): all 60,000 MNIST training images for 1 epoch "
                         "(600 steps of batch 100) with PGD/SLIDE-10 training attacks, on the small CNN "
                         "(conv16-conv32-fc128, 4.7x cheaper than Tramer & Boneh's), training budgets warmed up "
                         "linearly over the first 40% of the steps, evaluation on the first 500 test images; the "
                         "published models train the full CNN for 10+ epochs"},
}

#: Most expensive first (measured cost per batch relative to Adv_inf, bench/train.py).
COST_ORDER = ("max", "avg", "MSD", "MNG-AC", "Adv_1", "Adv_2", "Adv_inf", "SAT", "Nat")

#: Published union accuracies (MNIST l_inf 0.3, l_1 10, l_2 2; CIFAR-10 8/255, 12, 0.5).
PUBLISHED = {
    "mnist": {"max": {"union": 0.50, "source": "Tramer & Boneh 2019 (about 50%)"},
              "MSD": {"union": 0.584, "source": "Maini, Wong & Kolter 2020"}},
    "cifar10": {"MSD": {"union": 0.461, "source": "Maini et al. 2020, PreAct ResNet-18, weaker l_1 attacks"},
                "MNG-AC": {"union": 0.414, "source": "Madaan et al. 2021, WRN-28-10"}},
}


def _run(cmd: list[str], log: Path) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with open(log, "a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        return subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode


def _key(scheme: str, threats: str) -> str:
    return scheme if scheme != "adv" else f"adv_{threats}"


#: Exit status of a call that ran out of --time-limit with work left; seconds kept free for an evaluation.
UNFINISHED = UNFINISHED
EVAL_RESERVE = 60.0


def run_one(scheme: str, threats: str, args, base: list[str]) -> dict[str, Any]:
    """Train (or resume, or skip if finished) and evaluate (unless eval.json exists) one scheme.

    With ``args.deadline`` (time.monotonic() value) set, training stops at a checkpoint before it and the
    row comes back as ``{"key": ..., "unfinished": ...}``.
    """
    key = _key(scheme, threats)
    out = args.runs / key
    out.mkdir(parents=True, exist_ok=True)
    common = [*base, "--scheme", scheme, "--out", str(out)]
    if threats:
        common += ["--threats", threats]
    t0 = time.time()

    def left() -> float:
        return float("inf") if args.deadline is None else args.deadline - time.monotonic()

    if not (out / "result.json").exists():
        if left() <= 1.0:
            return {"key": key, "unfinished": "training not started: out of --time-limit"}
        limit = [] if args.deadline is None else ["--time-limit", f"{left():.0f}"]
        rc = _run([sys.executable, "-m", "empirical.train", *common, *limit, "--quiet"], out / "log.txt")
        if rc == UNFINISHED and args.deadline is not None:
            return {"key": key, "unfinished": "training stopped at a checkpoint: out of --time-limit"}
        if rc != 0:
            return {"key": key, "error": f"training exited with {rc}; see {out / 'log.txt'}"}
    if not (out / "eval.json").exists():
        if left() < EVAL_RESERVE:
            return {"key": key, "unfinished": "evaluation not started: out of --time-limit"}
        rc = _run([sys.executable, "-m", "empirical.train", *common, "--evaluate-only", "--quiet",
                   "--test-limit", str(args.test_limit), "--eval-threats", "linf,l1,l2", "--eval-strength", "eval"],
                   out / "log.txt")
        if rc != 0:
            return {"key": key, "error": f"evaluation exited with {rc}; see {out / 'log.txt'}"}
    ev = read_json(out / "eval.json")
    tr = read_json(out / "result.json")
    return {"key": key, "scheme": scheme, "threats": threats, "clean": ev["clean"], "per_threat": ev["per_threat"],
            "union": ev["union"], "average": ev["average"], "n_test": ev["n_test"],
            "eval_strength": ev.get("strength"),
            # per threat, how many examples each attack of the suite broke first (evaluations before the
            # attack log have none)
            "broken_by_attack": ev.get("attack_log", {}).get("broken_by_attack"),
            # binomial standard error of the union accuracy over the n_test evaluated images
            "union_se": (ev["union"] * (1 - ev["union"]) / ev["n_test"]) ** 0.5,
            "train_seconds": tr["train_seconds"], "eval_seconds": ev.get("eval_seconds"),
            "device": tr["device"], "eval_device": ev.get("device"), "final_loss": tr["final_loss"],
            "train_git_sha": tr["provenance"]["git_sha"], "eval_git_sha": ev["provenance"]["git_sha"], "wall_seconds_this_call": time.time() - t0}


def _check_train_flags(p, base: list[str]) -> None:
    """End with a one-line error unless empirical.train accepts ``base`` (with --extra) for every row."""
    from .train import ConfigError, build_parser as train_parser, config_from_args

    class Rejected(Exception):
        pass

    def reject(message: str):
        raise Rejected(message)

    parser = train_parser()
    parser.error = reject  # type: ignore[method-assign]
    for scheme, threats in SCHEMES_TABLE.values():
        argv = [*base, "--scheme", scheme, "--out", "."] + (["--threats", threats] if threats else [])
        try:
            ns, unknown = parser.parse_known_args(argv)
            if unknown:
                reject(f"unrecognized arguments: {' '.join(unknown)}")
            config_from_args(ns)
        except Rejected as exc:
            p.error(f"--extra: empirical.train: {exc}")
        except ConfigError as exc:
            p.error(f"--extra: empirical.train: {exc}")


def _table(rows, published) -> str:
    head = f"{'scheme':8s} {'clean':>6s} {'linf':>6s} {'l1':>6s} {'l2':>6s} {'union':>12s} {'avg':>6s} {'train s':>8s}  published union"
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['row']:8s} ERROR {r['error']}")
            continue
        pt = r["per_threat"]
        pub = published.get(r["row"], {})
        lines.append(f"{r['row']:8s} {r['clean']:6.3f} {pt.get('linf', float('nan')):6.3f} {pt.get('l1', float('nan')):6.3f} "
                     f"{pt.get('l2', float('nan')):6.3f} {r['union']:6.3f}±{r['union_se']:.3f} {r['average']:6.3f} {r['train_seconds']:8.0f}  "
                     + (f"{pub['union']:.3f} ({pub['source']})" if pub else "-"))
    return "\n".join(lines)


class MergeError(ValueError):
    """Tables that cannot be merged into one (different parameters, or one row measured twice differently)."""


#: The parts of a table that must agree for its rows to stand in one table.
MERGE_SAME = ("note", "params", "published_union")


def merge_tables(tables: list[tuple[str, dict]]) -> dict[str, Any]:
    """One table from ``(name, table)`` pairs written by :func:`main`: their rows in the order of
    ``SCHEMES_TABLE``, the totals summed over the rows, the parameters they share.  Raises
    :class:`MergeError` when a table is stale or has a failed row, the tables differ in ``MERGE_SAME`` or in
    their seeds, or a row appears twice with different values (a row read back by two calls is kept once)."""
    if not tables:
        raise MergeError("no tables to merge")
    name0, first = tables[0]
    rows: dict[str, dict] = {}
    for name, t in tables:
        missing = [k for k in ("rows", "provenance", *MERGE_SAME) if k not in t]
        if missing:
            raise MergeError(f"{name} is not a table of empirical.reproduce (no {', '.join(missing)})")
        if t.get("stale"):
            raise MergeError(f"{name} is marked stale")
        for k in MERGE_SAME:
            if t[k] != first[k]:
                raise MergeError(f"{name} and {name0} differ in {k!r}")
        if t["provenance"].get("seeds") != first["provenance"].get("seeds"):
            raise MergeError(f"{name} and {name0} differ in their seeds")
        for r in t["rows"]:
            if "error" in r or "unfinished" in r or r.get("row") not in SCHEMES_TABLE:
                raise MergeError(f"{name}: row {r.get('row')!r} is not a finished row of the table")
            old = rows.get(r["row"])
            same = {k: v for k, v in r.items() if k != "wall_seconds_this_call"}
            if old is not None and same != {k: v for k, v in old.items() if k != "wall_seconds_this_call"}:
                raise MergeError(f"row {r['row']!r} differs between {name} and an earlier table")
            rows.setdefault(r["row"], r)
    ordered = [rows[n] for n in SCHEMES_TABLE if n in rows]
    return {"note": first["note"], "rows": ordered, "published_union": first["published_union"],
            "params": first["params"],
            "train_seconds_total": sum(r["train_seconds"] for r in ordered),
            "eval_seconds_total": sum(r["eval_seconds"] or 0.0 for r in ordered),
            "table_text": _table(ordered, first["published_union"])}


#: the largest file --merge reads (a nine-row table with its provenance is about 100 KiB)
MAX_TABLE_BYTES = 64 * 2**20


def _merge(p, args) -> int:
    """--merge: read the tables, merge them, write --out with the merged files' provenance."""
    given = [f"--{d.replace('_', '-')}" for d in ("dataset", "preset", "schemes", "test_limit", "seed", "jobs",
                                                  "threads", "device", "data_dir", "runs", "time_limit", "extra")
             if getattr(args, d) != p.get_default(d)]
    if given:
        p.error(f"--merge: takes only --out, --overwrite and --quiet (the tables keep their own flags), got "
                f"{', '.join(given)}")
    t0 = time.time()
    tables = []
    for path in args.merge:
        try:
            tables.append((str(path), read_json(path, MAX_TABLE_BYTES)))
        except (OSError, ValueError) as exc:
            p.error(f"--merge: cannot read {str(path)!r} as a JSON table: {exc}")
    try:
        table = merge_tables(tables)
    except MergeError as exc:
        p.error(f"--merge: {exc}")
    from simulate.provenance import provenance, write_json

    table["wall_seconds_this_call"] = time.time() - t0
    table["provenance"] = provenance(params=table["params"], seeds=tables[0][1]["provenance"].get("seeds"),
                                     merged_from=[{"file": name, "rows": [r["row"] for r in t["rows"]],
                                                   "provenance": t["provenance"]} for name, t in tables])
    write_json(args.out, table)
    if not args.quiet:
        print(table["table_text"])
    return 0


def build_parser():
    p = ArgumentParser(prog="python -m empirical.reproduce", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist", choices=("mnist", "cifar10", "cifar10_jpeg"),
                   help="data set [default: mnist]")
    p.add_argument("--preset", default="cpu", choices=tuple(PRESETS), help="[default: cpu]")
    p.add_argument("--schemes", default=",".join(SCHEMES_TABLE), metavar="LIST",
                   help="rows: " + ",".join(SCHEMES_TABLE) + " [default: all]")
    p.add_argument("--test-limit", type=ranged("test_limit"), default=None, metavar="N",
                   help="evaluate on the first N test images [default: the preset's]")
    p.add_argument("--seed", type=ranged("seed"), default=0, metavar="N", help="random seed of every run [default: 0]")
    p.add_argument("--jobs", type=number(int, 1, 64, why="runs at a time; each is a process with its own data"),
                   default=1, metavar="N", help="runs at a time (CPU: cores; one GPU: 1) [default: 1]")
    p.add_argument("--threads", type=ranged("threads"), default=1, metavar="N",
                   help="torch CPU threads per run [default: 1]")
    p.add_argument("--device", type=device_type, default="auto", help="device of every run [default: auto]")
    p.add_argument("--data-dir", type=path_type, default=None, metavar="DIR",
                   help="data folder [default: $ADVTRAIN_DATA_DIR, then ../shared/data]")
    p.add_argument("--runs", type=path_type, default=None, metavar="DIR",
                   help="folder of the runs [default: runs/<dataset>_<preset> in the current folder]")
    p.add_argument("--out", type=path_type, required=True, metavar="FILE", help="the table (JSON)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--time-limit", type=ranged("time_limit"), default=None, metavar="SECONDS",
                   help="seconds this call may run (training stops at a checkpoint before; exit 75 if unfinished)")
    p.add_argument("--extra", default="", help="extra flags for empirical.train, e.g. '--epochs 20'")
    p.add_argument("--merge", type=path_type, nargs="+", default=None, metavar="TABLE",
                   help="instead of running: merge tables written by this command (same parameters and seed; a row "
                        "in two of them must be the same measurement) into --out")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return state_ranges(p)


@command
def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    claim_output(p, "--out", args.out, overwrite=args.overwrite)
    if args.merge is not None:
        return _merge(p, args)
    rows_wanted = [s.strip() for s in args.schemes.split(",") if s.strip()]
    bad = [s for s in rows_wanted if s not in SCHEMES_TABLE]
    if bad or not rows_wanted:
        p.error(f"--schemes: must be names from {list(SCHEMES_TABLE)}, got {bad or 'none'}")
    preset = PRESETS[args.preset]
    args.test_limit = preset["test_limit"] if args.test_limit is None else args.test_limit
    args.runs = args.runs or Path("runs") / f"{args.dataset}_{args.preset}"
    claim_output(p, "--runs", args.runs, folder=True)
    base = ["--dataset", args.dataset, "--seed", str(args.seed), "--threads", str(args.threads),
            "--device", args.device, *preset["train"], *args.extra.split()]
    if args.data_dir is not None:
        base += ["--data-dir", str(args.data_dir)]
    _check_train_flags(p, base)
    # leave a margin for starting processes, the last step and the checkpoint
    args.deadline = None if args.time_limit is None else time.monotonic() + 0.9 * args.time_limit - 10.0
    t0 = time.time()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        started = sorted(rows_wanted, key=COST_ORDER.index)
        futures = {name: pool.submit(run_one, *SCHEMES_TABLE[name], args, base) for name in started}
        rows = []
        for name in sorted(rows_wanted, key=list(SCHEMES_TABLE).index):
            r = futures[name].result()
            r["row"] = name
            rows.append(r)
            if args.quiet:
                continue
            if "unfinished" in r:
                print(f"{name}: unfinished ({r['unfinished']})", flush=True)
            elif "error" not in r:
                print(f"{name}: clean {r['clean']:.3f} union {r['union']:.3f} ({r['train_seconds']:.0f} s training)",
                      flush=True)
    unfinished = [r["row"] for r in rows if "unfinished" in r]
    if unfinished:
        print(f"unfinished after --time-limit {args.time_limit:g} s: {', '.join(unfinished)}; run the same command "
              f"again to resume (the table is written when every run is done)", file=sys.stderr)
        return UNFINISHED
    from simulate.provenance import provenance, write_json

    from .threats import DEFAULT_BUDGETS, budget_table

    published = PUBLISHED[budget_table(args.dataset)]
    params = {"dataset": args.dataset, "preset": args.preset, "train_flags": base, "test_limit": args.test_limit,
              "eval_attacks": "evaluation module, strength 'eval' (AutoAttack standard: APGD-CE, APGD-T, FAB-T, Square)",
              "budgets": {t: DEFAULT_BUDGETS[budget_table(args.dataset)][t] for t in ("linf", "l1", "l2")}}
    done = [r for r in rows if "error" not in r]
    note = preset["note"] + (f"; preset flags overridden by --extra {args.extra!r}" if args.extra.strip() else "")
    table = {"note": note, "rows": rows, "published_union": published, "params": params,
             # this call's wall time (runs finished by an earlier call are only read back), and the summed
             # training and evaluation seconds of all rows, whichever call ran them
             "wall_seconds_this_call": time.time() - t0,
             "train_seconds_total": sum(r["train_seconds"] for r in done),
             "eval_seconds_total": sum(r["eval_seconds"] or 0.0 for r in done), "table_text": _table(rows, published),
             "provenance": provenance(params=params, seeds={"seed": args.seed})}
    write_json(args.out, table)
    if not args.quiet:
        print(table["table_text"])
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
