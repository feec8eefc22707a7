"""Benchmark: sweeps on the serial backend against a local process pool and a dask LocalCluster, same run.

  * ODE phase diagram: 100 x 100 points over (rho, eps), prior 0.7, alpha_F = 200, with the baseline of
    standard training and the fixed point at every point (blocks of 100 points);
  * Monte Carlo: 10 x 10 points over (rho, eps) at N = 1000 (reduced engine by default: exact in law at
    finite N; --mc-engine full for the literal N-dimensional SGD), one point per task.

The baseline is the serial backend (imports and numba compilation warm); each parallel backend's time is
reported with its ratio to it.  The dask workers are started and warmed (imports, numba compilation) before
the clock starts, and that start-up is reported apart; the process pool is started inside the timed call
(spawn, imports and, for the Monte Carlo, numba compilation in each process count).  Every backend must return the same data set (checked).

    python bench/sweep.py [--ode-side 100] [--mc-side 10] [--mc-replicas 32] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulate.core.cli import ArgumentParser  # noqa: E402  (one-line errors, whole flag names only)

from simulate.sweep import store as sweep_store  # noqa: E402
from simulate.sweep import driver as sweep  # noqa: E402
from simulate.provenance import provenance, write_json  # noqa: E402
from simulate.sweep_engines import get_engine  # noqa: E402
from theory import Params  # noqa: E402


def _same(a, b) -> bool:
    return a.drop_attrs().identical(b.drop_attrs())


def _run_all(name, engine, grid, options, workers, log, warm=None, save=None):
    from distributed import Client, LocalCluster

    rows = []
    t0 = time.perf_counter()
    ref, st = sweep.run_sweep(engine, grid, options, progress=False)
    t_serial = time.perf_counter() - t0
    if save is not None:
        sweep_store.write_dataset(ref, save)
    rows.append({"case": name, "backend": "serial", "points": grid.size, "wall_s": t_serial, "startup_s": 0.0,
                 "ratio_to_serial": 1.0, "same_data_set": True})
    log(f"{name}: serial {t_serial:.1f} s")
    t0 = time.perf_counter()
    ds, _ = sweep.run_sweep(engine, grid, options, backend="processes", workers=workers, progress=False)
    t = time.perf_counter() - t0
    rows.append({"case": name, "backend": f"processes ({workers})", "points": grid.size, "wall_s": t,
                 "startup_s": None, "ratio_to_serial": t / t_serial, "same_data_set": _same(ref, ds)})
    log(f"{name}: processes {t:.1f} s")
    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=40, env={"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"})
    client = Client(cluster)
    client.run(warm or (lambda: __import__("simulate.sweep_engines")))  # imports (and numba) warm on every worker
    t_start = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds, _ = sweep.run_sweep(engine, grid, options, backend="dask", client=client, progress=False)
    t = time.perf_counter() - t0
    client.close()
    cluster.close()
    rows.append({"case": name, "backend": f"dask LocalCluster ({workers})", "points": grid.size, "wall_s": t,
                 "startup_s": t_start, "ratio_to_serial": t / t_serial, "same_data_set": _same(ref, ds)})
    log(f"{name}: dask {t:.1f} s (+{t_start:.1f} s start-up)")
    return rows


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ode-side", type=int, default=100)
    parser.add_argument("--mc-side", type=int, default=10)
    parser.add_argument("--mc-N", type=int, default=1000)
    parser.add_argument("--mc-replicas", type=int, default=32)
    parser.add_argument("--mc-alpha", type=float, default=200.0)
    parser.add_argument("--mc-engine", default="reduced", choices=("reduced", "full"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-ode", action="store_true")
    parser.add_argument("--skip-mc", action="store_true")
    parser.add_argument("--save-mc", type=Path, default=None, help="also write the serial MC data set here (.nc)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "sweep.json")
    args = parser.parse_args(argv)
    log = print
    base = Params(prior=0.7)
    load0 = os.getloadavg()
    rows = []
    if not args.skip_ode:
        n = args.ode_side
        grid = sweep.make_grid([f"rho=0.25:4:{n}", f"eps=0:2:{n}"], base, get_engine("ode"))
        rows += _run_all(f"ODE {n}x{n}", "ode", grid, {"alphas": [200.0]}, args.workers, log)
    if not args.skip_mc:
        n = args.mc_side
        grid = sweep.make_grid([f"rho=0.5:4:{n}", f"eps=0:2:{n}"], base, get_engine("mc"), {"N": args.mc_N})
        opts = {"alphas": [args.mc_alpha], "N": args.mc_N, "replicas": args.mc_replicas,
                "mc_engine": args.mc_engine, "seed": 0, "threads": 1}
        eng = get_engine("mc")
        eng.compute([grid.point(0)], eng.check_options({**opts, "alphas": [1.0]}))  # numba compilation, untimed
        point, warm_opts = grid.point(0), eng.check_options({**opts, "alphas": [1.0]})
        rows += _run_all(f"MC {n}x{n} N={args.mc_N} x{args.mc_replicas} ({args.mc_engine})", "mc", grid, opts,
                         args.workers, log, warm=lambda: get_engine("mc").compute([point], warm_opts) and None,
                         save=args.save_mc)
    load1 = os.getloadavg()
    print(f"\n{'case':38} {'backend':24} {'points':>7} {'wall s':>8} {'start-up s':>10} {'/serial':>8} {'same':>5}")
    for r in rows:
        su = "" if r["startup_s"] in (None, 0.0) else f"{r['startup_s']:.1f}"
        print(f"{r['case']:38} {r['backend']:24} {r['points']:7d} {r['wall_s']:8.1f} {su:>10} "
              f"{r['ratio_to_serial']:8.2f} {str(r['same_data_set']):>5}")
    print(f"load average (1 min) before {load0[0]:.2f}, after {load1[0]:.2f}; {os.cpu_count()} CPUs")
    write_json(args.out, {"provenance": provenance(params=vars(args), seeds={"mc_seed": 0}), "rows": rows,
                          "loadavg_before": load0, "loadavg_after": load1})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
