"""Benchmark of the Monte Carlo engines (issue 3), baselines measured side by side in the same run.

Full engine, element-updates per second (steps x N / s) at N = 10^4 (scenario 1 of the talk):
  * engine    simulate.kernels.linear.full_steps: SplitMix64 counter-based streams (BigCrush-passing; Steele,
              Lea & Flood 2014) and a 256-layer ziggurat (Marsaglia & Tsang 2000) with a vectorised fast
              path, fused dot products, lazy normalisation, replicas in parallel (prange);
  * numpy     a straightforward numpy step: rng.standard_normal(N) (PCG64 + ziggurat), w @ xi, update,
              np.linalg.norm, one replica;
  * numba     a straightforward numba loop with np.random.standard_normal per element (numba's
              Mersenne Twister), one replica on one core, and the same loop over replicas with prange on
              every core.
Goal: engine >= 10 x the straightforward numba loop on the 2-core machine.

Reduced engine (simulate.kernels.linear.reduced_steps), steps per second per core for N = 10^2, 10^4, 10^6:
goal above 10^7 per core, independent of N.

    python bench/mc.py [--N 10000] [--repeats 3] [--out bench/out/mc.json]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulate.core.cli import ArgumentParser  # noqa: E402  (one-line errors, whole flag names only)

import numba  # noqa: E402

from simulate.kernels import linear as K  # noqa: E402
import mc_baselines as BL  # noqa: E402
from simulate.mc import LOSS_CODES, RENORM_EVERY  # noqa: E402
from simulate.provenance import provenance, write_json  # noqa: E402
from theory import Params  # noqa: E402
from theory.ode import loss_derivative  # noqa: E402


def _median_time(fn, repeats):
    """Median wall time, the wall times, and the median CPU time of this process (all threads)."""
    times, cpu = [], []
    for _ in range(repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times), (times, statistics.median(cpu))


def _unit_rows(M, N, rng):
    U = rng.standard_normal((M, N))
    return U / np.linalg.norm(U, axis=1, keepdims=True)


def numpy_steps(w, b, n_steps, p: Params, rng):
    """The straightforward numpy implementation (B = e_1), one step at a time."""
    N = w.size
    sd = (math.sqrt(p.v1), math.sqrt(p.v2))
    for _ in range(n_steps):
        tau = 1.0 if rng.random() < p.prior else -1.0
        xi = sd[0 if tau > 0 else 1] * rng.standard_normal(N)
        xi[0] += tau * 0.5 * p.rho
        x = w @ xi - tau * p.eps - b
        delta = float(loss_derivative(x, tau, p.loss, p.erf_scale))
        w = w - (p.eta_w / N) * delta * (xi - tau * p.eps * w)
        w /= np.linalg.norm(w)
        b += p.eta_b * delta / N
    return w, b


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--N", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=1000, help="steps per replica of the full engine [1000]")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reduced-steps", type=int, default=200_000, help="steps per replica, reduced [2e5]")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "mc.json")
    args = parser.parse_args(argv)

    p = Params()  # scenario 1 of the talk, adversarial training
    N, S = args.N, args.steps
    cores = numba.config.NUMBA_NUM_THREADS
    rng = np.random.default_rng(0)
    rows = []

    def row(name, threads, replicas, n_steps, n_elem, seconds, times, note=""):
        times, cpu = times
        work = replicas * n_steps * n_elem
        rate = work / seconds
        rows.append({"name": name, "threads": threads, "replicas": replicas, "steps_per_replica": n_steps,
                     "N": n_elem, "seconds_median": seconds, "seconds_all": times, "cpu_seconds_median": cpu,
                     "rate": rate, "rate_per_cpu_second": work / cpu, "unit": note})
        return rate

    # ---- (a) numpy -----------------------------------------------------------------------------
    w0 = _unit_rows(1, N, rng)[0]
    n_np = max(S // 4, 10)
    t, ts = _median_time(lambda: numpy_steps(w0.copy(), 0.0, n_np, p, np.random.default_rng(1)), args.repeats)
    r_numpy = row("numpy straightforward", 1, 1, n_np, N, t, ts, "element-updates/s")

    # ---- (b) numba straightforward loop ----------------------------------------------------------
    BL.seed_numba(1)
    BL.baseline_numba_steps(w0.copy(), 0.0, 2, p.rho, p.prior, p.v1, p.v2, p.eta_w, p.eta_b, p.eps)  # compile
    t, ts = _median_time(lambda: BL.baseline_numba_steps(w0.copy(), 0.0, S, p.rho, p.prior, p.v1, p.v2, p.eta_w,
                                                        p.eta_b, p.eps), args.repeats)
    r_numba1 = row("numba loop, np.random.standard_normal per element", 1, 1, S, N, t, ts, "element-updates/s")
    numba.set_num_threads(cores)
    Wb = _unit_rows(cores, N, rng)
    bb = np.zeros(cores)
    BL.baseline_numba_parallel(Wb, bb, 2, p.rho, p.prior, p.v1, p.v2, p.eta_w, p.eta_b, p.eps)
    t, ts = _median_time(lambda: BL.baseline_numba_parallel(Wb, bb, S, p.rho, p.prior, p.v1, p.v2, p.eta_w,
                                                           p.eta_b, p.eps), args.repeats)
    r_numbaP = row("numba loop, np.random.standard_normal per element, prange", cores, cores, S, N, t, ts,
                   "element-updates/s")

    # ---- full engine -----------------------------------------------------------------------------
    def full(threads, M):
        numba.set_num_threads(threads)
        U = _unit_rows(M, N, rng)
        A, bf = np.ones(M), np.zeros(M)
        keys = np.arange(1, M + 1, dtype=np.uint64) * np.uint64(0x632BE59BD9B4E019)
        exk = keys ^ np.uint64(0xD1B54A32D192ED03)
        exp_ = np.zeros(M, np.uint64)
        stride = np.uint64(1 << (N - 1).bit_length())
        Bv = np.zeros(N)
        Bv[0] = 1.0
        t0 = [0]

        def go(n):
            K.full_steps(K.Replicas(U, A, bf, exp_), K.Streams(keys, exk, stride),
                         K.ClusterData(Bv, 0, np.array([0.5 * p.rho, -0.5 * p.rho]), np.sqrt([p.v1, p.v2]),
                                   np.ones((2, 1)), True, p.prior),
                         K.Training(p.eta_w, p.eta_b, p.eps, False, LOSS_CODES[p.loss], p.erf_scale),
                         t0[0], n, np.zeros((M, 1)), False, RENORM_EVERY)
            t0[0] += n

        go(2)
        t, ts = _median_time(lambda: go(S), args.repeats)
        return row("full engine (SplitMix64 + ziggurat)", threads, M, S, N, t, ts, "element-updates/s")

    r_full1 = full(1, 1)
    r_full = full(cores, cores)
    r_full4 = full(cores, 4 * cores)

    # ---- reduced engine --------------------------------------------------------------------------
    red = {}
    for Nr in (100, 10_000, 1_000_000):
        for threads in (1, cores):
            numba.set_num_threads(threads)
            M = 8 * threads
            Rs, br = np.zeros(M), np.zeros(M)
            keys = np.arange(1, M + 1, dtype=np.uint64) * np.uint64(0x632BE59BD9B4E019)
            pos = np.zeros(M, np.uint64)
            args_r = (Nr, p.rho, p.prior, p.v1, p.v2, p.eta_w, p.eta_b, p.eps, np.zeros((M, 1)), False, False,
                      LOSS_CODES[p.loss], p.erf_scale)
            K.reduced_steps(Rs, br, keys, pos, 2, *args_r)
            n = args.reduced_steps
            t, ts = _median_time(lambda: K.reduced_steps(Rs, br, keys, pos, n, *args_r), args.repeats)
            red[(Nr, threads)] = row(f"reduced engine, N={Nr}", threads, M, n, 1, t, ts, "steps/s")

    ratios = {
        "full / numba loop (1 core each)": r_full1 / r_numba1,
        f"full ({cores} cores) / numba loop (1 core)": r_full / r_numba1,
        f"full ({cores} cores) / numba loop prange ({cores} cores)": r_full / r_numbaP,
        f"full ({cores} cores, {4 * cores} replicas) / numba loop prange ({cores} cores)": r_full4 / r_numbaP,
        f"full ({cores} cores) / numpy (1 core)": r_full / r_numpy,
        "reduced steps/s per core (1 thread), N=1e2, 1e4, 1e6": [red[(n, 1)] for n in (100, 10_000, 1_000_000)],
    }
    cpu = {(r["name"], r["threads"], r["replicas"]): r["rate_per_cpu_second"] for r in rows}
    ratios["per CPU-second: full (1 thread) / numba loop (1 thread)"] = (
        cpu[("full engine (SplitMix64 + ziggurat)", 1, 1)]
        / cpu[("numba loop, np.random.standard_normal per element", 1, 1)])
    print(f"Monte Carlo benchmark, N = {N}, {cores} cores (numba threads), scenario 1 of the talk")
    print(f"{'implementation':58} {'threads':>7} {'replicas':>8} {'rate (wall)':>12} {'per CPU-s':>10}  unit")
    for r in rows:
        print(f"{r['name']:58} {r['threads']:7d} {r['replicas']:8d} {r['rate']:12.4g} "
              f"{r['rate_per_cpu_second']:10.4g}  {r['unit']}")
    for k, v in ratios.items():
        print(f"{k}: " + (", ".join(f"{x:.3g}" for x in v) if isinstance(v, list) else f"{v:.2f}x"))
    # like for like: the same number of threads for the engine and the baseline
    like = {"1 thread": r_full1 / r_numba1, f"{cores} threads": max(r_full, r_full4) / r_numbaP}
    goal_full = min(like.values())
    print("goal full engine >= 10x the straightforward numba loop (same threads): "
          + ", ".join(f"{k} {v:.1f}x" for k, v in like.items()) + f" -> {'met' if goal_full >= 10 else 'NOT met'}")
    ratios["like for like (same threads)"] = like
    per_core = min(red[(n, 1)] for n in (100, 10_000, 1_000_000))
    per_cpu = min(r["rate_per_cpu_second"] for r in rows if r["name"].startswith("reduced") and r["threads"] == 1)
    print(f"goal reduced engine > 1e7 steps/s per core: min over N {per_core:.3g} (wall, 1 thread), "
          f"{per_cpu:.3g} per CPU-second -> {'met' if per_core > 1e7 else 'NOT met'} (wall)")
    import os

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    write_json(args.out, {"provenance": provenance(params=p, seeds={"numpy": 0, "numba": 1},
                                                  bench={"N": N, "steps": S, "repeats": args.repeats,
                                                         "cores": cores, "loadavg_at_end": load}),
                          "rows": rows, "ratios": ratios,
                          "rng": "SplitMix64 (Steele, Lea & Flood 2014; passes BigCrush) counter-based streams, "
                                 "256-layer ziggurat (Marsaglia & Tsang 2000) with independent index/sign/value bits"})
    print(f"wrote {args.out} (load average at the end: {load})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
