"""What each command costs here: CPU seconds of the README's commands at their default and at a quick setting.

    python bench/costs.py                      # the quick settings and the cheaper defaults
    python bench/costs.py --all                # every default as well (the MNIST training alone takes hours)
    python bench/costs.py --only ode,committee_talk --out /tmp/costs.json
    python bench/costs.py --markdown           # also print the README's table
    python bench/costs.py --combine a.json b.json --markdown   # one table from runs of disjoint --only subsets

Each command runs as a child process in a scratch folder with one thread (OMP/MKL/NUMBA_NUM_THREADS=1 and
--threads 1 where a command takes it) and --quiet.  Its cost is the child's CPU time (user + system, from
``resource.getrusage(RUSAGE_CHILDREN)``), which does not depend on the other jobs sharing the machine the way
its wall time (printed beside it) does.  numba compiles its kernels on the first call in a process, and that
compilation is part of every run's CPU time here, as it is for a user.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulate.core.cli import ArgumentParser  # noqa: E402  (one-line errors, whole flag names only)

#: name: (command, default arguments, quick arguments, default measured without --all, needs MNIST)
#: The quick MNIST model is adversarially trained (l_inf 0.3, PGD-5) on 5,000 training images for one epoch and
#: evaluated on 100 test images with the quicker 'apgd' level; results/mnist_cpu_table.json (the same flags
#: through empirical.reproduce --preset cpu) shows what such a model learns: clean .78, l_inf .14.
COMMANDS = {
    "ode": ("simulate.ode", ["--rho", "2", "--eps", "1"], ["--rho", "2", "--eps", "1", "--alpha-max", "50"],
            True, False),
    "mc": ("simulate.mc", ["--rho", "2", "--eps", "1", "--N", "1000", "--replicas", "32", "--threads", "1"],
           ["--rho", "2", "--eps", "1", "--N", "1000", "--replicas", "32", "--engine", "reduced", "--threads", "1"],
           True, False),
    "committee_talk": ("simulate.committee", ["--preset", "talk", "--K", "2", "--eps", "1"],
                       ["--preset", "talk", "--K", "2", "--eps", "1", "--alpha-max", "50"], True, False),
    "committee_xor": ("simulate.committee", ["--preset", "xor", "--K", "4", "--eps", "0.5", "--pgd-steps", "3",
                                             "--pgd-step", "0.5"],
                      ["--preset", "xor", "--K", "4", "--eps", "0.5", "--pgd-steps", "3", "--pgd-step", "0.5",
                       "--alpha-max", "20"], True, False),
    "mc_committee": ("simulate.mc_committee", [], ["--N", "200", "--replicas", "4", "--n-test", "500"], False, False),
    "protocol": ("simulate.protocol", ["--prior", "0.7", "--rho", "2"],
                 ["--prior", "0.7", "--rho", "2", "--segments", "5", "--no-mc"], True, False),
    "tradeoff_lp": ("simulate.tradeoff", ["lp", "--d", "200", "--a", "1", "2", "4", "--p0", "0.9", "0.95", "0.99"],
                    ["lp", "--d", "200", "--a", "1", "2", "4", "--p0", "0.9", "0.95", "0.99", "--n-theta", "61",
                     "--n-psi", "31", "--n-tau", "1"], True, False),
    "sweep": ("simulate.sweep", ["--grid", "rho=0.25:4:100", "--grid", "eps=0:2:100", "--prior", "0.7", "--out",
                                 "phase.nc"],
              ["--grid", "rho=0.25:4:10", "--grid", "eps=0:2:10", "--prior", "0.7", "--out", "phase.nc"], True, False),
    "figures": ("figures", ["all", "--out", "figs"], ["all", "--quick", "--out", "figs"], False, False),
    "train": ("empirical.train", ["--dataset", "mnist", "--scheme", "max", "--threats", "linf,l1,l2", "--out", "run",
                                  "--threads", "1"],
              ["--dataset", "mnist", "--scheme", "adv", "--threats", "linf", "--train-limit", "5000", "--epochs", "1",
               "--batch-size", "50", "--attack-steps", "5", "--test-limit", "100", "--eval-strength", "apgd",
               "--out", "run", "--threads", "1"], False, True),
    "evaluate": ("empirical.evaluate", ["--weights", "run/model.pt", "--threats", "linf,l1,l2,rt", "--test-limit",
                                        "1000", "--threads", "1"],
                 ["--weights", "run/model.pt", "--threats", "linf", "--test-limit", "100", "--strength", "apgd",
                  "--threads", "1"], False, True),
}


def _data_dir() -> Path | None:
    for cand in (os.environ.get("ADVTRAIN_DATA_DIR"), ROOT.parent / "shared" / "data", Path("/work/shared/data")):
        if cand and (Path(cand) / "mnist").is_dir():
            return Path(cand)
    return None


def measure(module: str, args: list[str], cwd: Path) -> dict:
    """Run ``python -m module args --quiet`` in ``cwd``; its CPU seconds (user + system), wall seconds, exit status."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", module, *args, "--quiet"], cwd=cwd, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    err = proc.stderr.strip().splitlines()
    return {"cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "exit": proc.returncode,
            "stderr_last": err[-1][:300] if err else ""}


def _train_outcome(path: Path) -> dict | None:
    """What the measured training reached: its final loss and the accuracies of its final evaluation (so the
    table's quick path is known to learn), from the run's own ``result.json``; None if it wrote none."""
    import json

    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ev = result.get("evaluation") or {}
    return {"final_loss": result.get("final_loss"), "n_train": result.get("n_train"),
            **{k: v for k, v in ev.items() if k in ("clean", "union", "n_test", "strength", "threats")},
            **{f"robust_{k}": v for k, v in (ev.get("per_threat") or {}).items() if isinstance(v, (int, float))}}


def markdown(rows: dict) -> str:
    lines = ["| command (default setting) | CPU s | quick setting (its arguments) | CPU s |", "|---|---|---|---|"]
    for name, r in rows.items():
        module, default, quick = COMMANDS[name][:3]

        def cell(m):
            if m is None:
                return "not measured"
            if m["exit"] not in (0, 1) or (m["exit"] == 1 and module != "simulate.mc_committee"):
                return f"failed (exit {m['exit']}, see the JSON)"
            note = " (a check failed: exit 1)" if m["exit"] == 1 else ""
            return f"{m['cpu_s']:.0f}{note}" if m["cpu_s"] >= 10 else f"{m['cpu_s']:.1f}{note}"

        lines.append(f"| `python -m {module} {' '.join(default)}`".rstrip() + f" | {cell(r['default'])} | "
                     f"`{' '.join(quick)}` | {cell(r['quick'])} |")
    return "\n".join(lines)


def _write(args, names, rows, complete: bool) -> None:
    from simulate.core.provenance import provenance, write_json

    write_json(args.out, {"what": "CPU seconds (user + system of the child process, one thread) of the README's "
                                  "commands at the default and a quick setting",
                          "complete": complete,
                          "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor(),
                                      "load_average": os.getloadavg()},
                          "rows": rows, "markdown": markdown(rows),
                          "provenance": provenance(params={"names": names, "all": args.all})})


def _combine(p, args) -> int:
    import json

    from simulate.core.provenance import provenance, write_json

    rows, sources = {}, []
    for path in args.combine:
        try:
            part = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            p.error(f"--combine: cannot read {path}: {err}")
        rows.update(part["rows"])
        sources.append({"file": str(path), "provenance": part["provenance"], "machine": part.get("machine")})
    rows = {name: rows[name] for name in COMMANDS if name in rows}
    write_json(args.out, {"what": "CPU seconds (user + system of the child process, one thread) of the README's "
                                  "commands at the default and a quick setting",
                          "rows": rows, "markdown": markdown(rows), "combined_from": sources,
                          "provenance": provenance(params={"combine": [str(s) for s in args.combine]})})
    print(f"wrote {args.out}")
    if args.markdown:
        print(markdown(rows))
    return 0


def main(argv=None) -> int:
    p = ArgumentParser(prog="python bench/costs.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--all", action="store_true", help="measure every default too (hours: the MNIST training)")
    p.add_argument("--only", default=None, metavar="NAMES",
                   help=f"comma-separated subset of: {', '.join(COMMANDS)}")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "costs_cpu.json", metavar="JSON",
                   help="where the measurements go, with provenance [results/costs_cpu.json]")
    p.add_argument("--markdown", action="store_true", help="also print the README's table")
    p.add_argument("--combine", type=Path, nargs="+", default=None, metavar="JSON",
                   help="measure nothing: join the rows of earlier outputs (runs of disjoint --only subsets, in "
                        "parallel) into --out, in the order of the commands")
    args = p.parse_args(argv)
    if args.combine is not None:
        return _combine(p, args)
    names = list(COMMANDS) if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in COMMANDS]
    if unknown:
        p.error(f"--only: unknown {', '.join(unknown)} (allowed: {', '.join(COMMANDS)})")
    data = _data_dir()
    rows: dict = {}
    with tempfile.TemporaryDirectory(prefix="costs-") as tmp:
        for name in names:
            module, default, quick, cheap, needs_data = COMMANDS[name]
            extra = ["--data-dir", str(data)] if needs_data and data is not None else []
            rows[name] = {"command": module, "default_args": default, "quick_args": quick, "default": None,
                          "quick": None}
            if needs_data and data is None:
                rows[name]["skipped"] = "no MNIST folder ($ADVTRAIN_DATA_DIR or ../shared/data)"
                print(f"{name:15} skipped: no MNIST data", flush=True)
                continue
            for setting, a in (("quick", quick), ("default", default)):
                if setting == "default" and not (cheap or args.all):
                    continue
                work = Path(tmp) / f"{name}-{setting}"
                work.mkdir()
                if module == "empirical.evaluate":  # evaluates the quick training's model
                    (work / "run").symlink_to(Path(tmp) / "train-quick" / "run", target_is_directory=True)
                m = measure(module, a + extra, work)
                if module == "empirical.train":
                    m["outcome"] = _train_outcome(work / "run" / "result.json")
                rows[name][setting] = m
                _write(args, names, rows, complete=False)  # what is measured survives an interrupted run
                print(f"{name:15} {setting:8} CPU {m['cpu_s']:8.1f} s  wall {m['wall_s']:8.1f} s  exit {m['exit']}"
                      + (f"  ({m['stderr_last']})" if m["exit"] else ""), flush=True)
    _write(args, names, rows, complete=True)
    print(f"wrote {args.out}")
    if args.markdown:
        print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
