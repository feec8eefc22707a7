"""Benchmark: ODE integration to alpha = 200, one trajectory and a grid of 10,000 (rho, eps) trajectories.

Goals (issue 2): one trajectory in under 20 ms, the grid in under 10 s on the 2-core machine.
Baselines measured in the same run:
  * one trajectory: the same solve with the general vectorised numpy right-hand side (theory.ode.drift on
    0-d arrays) instead of the scalar closed-form fast path;
  * grid: a Python loop of single-trajectory solves over a random subset, extrapolated to the grid size.

    python bench/ode.py [--grid 100] [--repeats 20] [--out bench/out/ode.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulate.core.cli import ArgumentParser  # noqa: E402  (one-line errors, whole flag names only)

from scipy.integrate import solve_ivp  # noqa: E402

from simulate.ode import integrate, integrate_grid  # noqa: E402
from simulate.provenance import provenance, write_json  # noqa: E402
from theory import Params  # noqa: E402
from theory.ode import drift  # noqa: E402


def _time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", type=int, default=100, help="grid side: grid x grid trajectories [100]")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--loop-subset", type=int, default=50, help="trajectories timed in the loop baseline")
    parser.add_argument("--rtol-grid", type=float, default=1e-8)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "ode.json")
    args = parser.parse_args(argv)

    p = Params()  # scenario 1 of the talk, adversarial training
    alphas = np.array([0.0, 10.0, 50.0, 200.0])
    rows = []

    t_fast, _ = _time(lambda: integrate(p, alphas), args.repeats)

    def generic():
        def fun(_a, y):
            dR, db = drift(np.asarray(y[0]), np.asarray(y[1]), rho=p.rho, prior=p.prior, v1=p.v1, v2=p.v2,
                           eta_w=p.eta_w, eta_b=p.eta_b, eps=p.eps)
            return np.array([dR, db])
        solve_ivp(fun, (0, 200.0), [p.R0, p.b0], method="DOP853", t_eval=alphas, rtol=1e-10, atol=1e-12)

    t_generic, _ = _time(generic, max(3, args.repeats // 4))
    rows.append({"target": "one trajectory, alpha=200 (rtol 1e-10)", "time_s": t_fast,
                 "baseline": "numpy array rhs", "baseline_time_s": t_generic, "speedup": t_generic / t_fast,
                 "goal_s": 0.020, "met": t_fast < 0.020})

    n = args.grid
    rho = np.linspace(0.5, 4.0, n)[:, None]
    eps = np.linspace(0.0, 2.0, n)[None, :]
    t0 = time.perf_counter()
    R, b = integrate_grid(alphas, rtol=args.rtol_grid, atol=1e-10, rho=rho, eps=eps, prior=0.7, v1=1.0,
                          v2=1.0, eta_w=0.04, eta_b=0.2)
    t_grid = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    picks = rng.choice(n * n, size=min(args.loop_subset, n * n), replace=False)
    t0 = time.perf_counter()
    max_dev = 0.0
    for k in picks:
        i, j = divmod(int(k), n)
        traj = integrate(Params(rho=float(rho[i, 0]), eps=float(eps[0, j]), prior=0.7), alphas,
                         rtol=args.rtol_grid, atol=1e-10)
        max_dev = max(max_dev, float(np.max(np.abs(traj.R - R[:, i, j]))), float(np.max(np.abs(traj.b - b[:, i, j]))))
    t_loop = (time.perf_counter() - t0) / len(picks) * n * n
    rows.append({"target": f"grid of {n * n} (rho, eps) trajectories, alpha=200 (rtol {args.rtol_grid:g})",
                 "time_s": t_grid, "baseline": f"Python loop (extrapolated from {len(picks)})",
                 "baseline_time_s": t_loop, "speedup": t_loop / t_grid, "goal_s": 10.0, "met": t_grid < 10.0,
                 "max_deviation_grid_vs_loop": max_dev})

    print(f"{'target':58} {'time':>10} {'baseline':>12} {'speedup':>8} {'goal':>7} met")
    for r in rows:
        print(f"{r['target']:58} {r['time_s']:9.4f}s {r['baseline_time_s']:11.4f}s {r['speedup']:7.1f}x "
              f"{r['goal_s']:6.3g}s {'yes' if r['met'] else 'NO'}")
    print(f"grid vs loop: max |deviation| of R, b = {max_dev:.2e}")
    write_json(args.out, {"benchmark": "ode", "rows": rows,
                          "provenance": provenance(params=p, seeds={"subset": 0}, grid=n, alphas=alphas)})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
