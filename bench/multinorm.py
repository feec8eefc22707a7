"""Benchmark of the multinorm family: the Monte Carlo kernel against a plain numba loop in the same run, and
the theory to alpha = 50 for each scheme.

Monte Carlo, coordinate updates per second (steps x N / s) at d = 10^4 (N = d + 1), one replica on one thread
and, for the kernel, replicas in parallel on every core:
  * kernel  simulate.kernels.multinorm.multinorm_steps: SplitMix64 counter-based noise with a vectorised
            ziggurat fast path, every attack quantity (|w|_1, argmax |w_j|, the sums with sign(w)) from the
            same pass as the dot product, lazy normalisation: two passes over w per step;
  * plain   simulate.kernels.multinorm.plain_steps: the same SGD written directly in numba, np.random per
            element, the attack vectors built explicitly, np.argmax, np.linalg.norm (a new array per
            operation), one replica.
Both for each scheme (the cost differs: avg evaluates two attack points).

Theory: CPU seconds of theory.multinorm.solve to alpha = 50 (51 output times) at the issue's parameters, for
each scheme at d = 1000 and d = inf, against a baseline in the same run (the same solver with the
Scharfetter-Gummel flux on every face and rtol 1e-9: the settings before the speed work); goal < 2 s.

    python bench/multinorm.py [--d 10000] [--steps 300] [--repeats 3] [--out bench/out/multinorm.json]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numba  # noqa: E402

from simulate.kernels import multinorm as K  # noqa: E402
from simulate.multinorm.mc import LOSS_CODES, RENORM_EVERY, initial_weights  # noqa: E402
from simulate.core.cli import ArgumentParser, number  # noqa: E402  (one-line errors, whole flag names only)
from simulate.core.provenance import provenance, write_json  # noqa: E402
from theory.multinorm import SCHEMES, MultinormParams, ParameterError, check_d, solve  # noqa: E402


#: the theory's baseline: the same solver with the Scharfetter-Gummel flux on every face and rtol 1e-9, atol 1e-11
BASELINE = {"flux": "sg", "rtol": 1e-9, "atol": 1e-11}


def _d_or_inf(text: str):
    try:
        return check_d(text)
    except ParameterError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1 or inf") from None


def _median_time(fn, repeats):
    """Median wall time, and the median CPU time of this process (all threads)."""
    wall, cpu = [], []
    for _ in range(repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu), wall


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d", type=number(int, 2, 10**7, why="one float64 N-vector per replica"), default=10_000,
                        metavar="D", help="number of weak features of the Monte Carlo timing [10000]")
    parser.add_argument("--steps", type=number(int, 1, 10**7), default=300, metavar="S",
                        help="steps per replica per timing [300]")
    parser.add_argument("--repeats", type=number(int, 1, 100), default=3, metavar="R",
                        help="timings per row; the median is reported [3]")
    parser.add_argument("--schemes", nargs="+", default=list(SCHEMES), choices=SCHEMES)
    parser.add_argument("--theory-d", type=_d_or_inf, nargs="+", default=[1000, math.inf], metavar="D",
                        help="d of the theory timing, integers or inf [1000 inf]")
    parser.add_argument("--theory-schemes", nargs="*", default=list(SCHEMES), choices=SCHEMES,
                        help="schemes of the theory timing [all]; none: no theory row")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "multinorm.json")
    args = parser.parse_args(argv)

    d, S = args.d, args.steps
    N = d + 1
    cores = numba.config.NUMBA_NUM_THREADS
    rows, ratios = [], {}

    def row(name, scheme, threads, replicas, wall, cpu, walls, work):
        rows.append({"name": name, "scheme": scheme, "threads": threads, "replicas": replicas, "d": d,
                     "steps_per_replica": S, "seconds_median": wall, "seconds_all": walls, "cpu_seconds_median": cpu,
                     "rate": work / wall, "rate_per_cpu_second": work / cpu, "unit": "coordinate-updates/s"})
        return work / wall

    for scheme in args.schemes:
        p = MultinormParams(scheme=scheme)
        code, loss = K.SCHEME_CODES[scheme], LOSS_CODES[p.loss]
        w_start = initial_weights(p, d, np.random.SeedSequence(0))

        # plain numba loop, one replica
        K.seed_plain(1)
        K.plain_steps(w_start.copy(), 0.0, 2, code, p.a, p.p0, p.e, p.eps1, p.eps2, p.eta_w, p.eta_b, loss)
        wall, cpu, walls = _median_time(lambda: K.plain_steps(w_start.copy(), 0.0, S, code, p.a, p.p0, p.e, p.eps1,
                                                              p.eps2, p.eta_w, p.eta_b, loss), args.repeats)
        r_plain = row("plain numba loop (np.random, explicit attack vectors)", scheme, 1, 1, wall, cpu, walls, S * N)

        def kernel(threads, M):
            numba.set_num_threads(threads)
            U = np.stack([w_start] * M)
            A, bb, ep = np.ones(M), np.zeros(M), np.zeros(M, np.uint64)
            keys = np.arange(1, M + 1, dtype=np.uint64) * np.uint64(0x632BE59BD9B4E019)
            exk = keys ^ np.uint64(0xD1B54A32D192ED03)
            stride = np.uint64(1 << (d - 1).bit_length())
            t0 = [0]

            def go(n):
                K.multinorm_steps(U, A, bb, ep, keys, exk, stride, t0[0], n, code, p.a, p.p0, p.e, p.eps1, p.eps2,
                                  p.eta_w, p.eta_b, loss, RENORM_EVERY)
                t0[0] += n

            go(2)
            wall, cpu, walls = _median_time(lambda: go(S), args.repeats)
            return row("kernel (SplitMix64 + ziggurat, fused passes)", scheme, threads, M, wall, cpu, walls, M * S * N)

        r_k1 = kernel(1, 1)
        r_kP = kernel(cores, 2 * cores)
        cpu_rate = {(r["name"][:5], r["threads"]): r["rate_per_cpu_second"] for r in rows if r["scheme"] == scheme}
        ratios[scheme] = {"kernel / plain (1 thread each)": r_k1 / r_plain,
                          "per CPU-second, kernel / plain (1 thread each)": cpu_rate[("kerne", 1)] / cpu_rate[("plain", 1)],
                          f"kernel ({cores} threads) / plain (1 thread)": r_kP / r_plain}

    theory_rows = []
    alphas = np.linspace(0.0, 50.0, 51)
    for td in args.theory_d:
        for scheme in args.theory_schemes:
            p = MultinormParams(scheme=scheme)
            solve(p, alphas[:3], td, snapshots=False)  # warm-up (imports, caches)
            cpu = {}
            for label, kw in (("solve", {}), ("baseline", BASELINE)):
                c0, t0 = time.process_time(), time.perf_counter()
                solve(p, alphas, td, snapshots=False, **kw)
                cpu[label] = (time.process_time() - c0, time.perf_counter() - t0)
            theory_rows.append({"scheme": scheme, "d": str(td), "alpha_max": 50.0, "cpu_seconds": cpu["solve"][0],
                                "wall_seconds": cpu["solve"][1], "baseline": BASELINE,
                                "baseline_cpu_seconds": cpu["baseline"][0],
                                "speedup_vs_baseline": cpu["baseline"][0] / cpu["solve"][0]})

    print(f"multinorm Monte Carlo benchmark, d = {d} (N = {N}), {S} steps per replica, {cores} numba threads; "
          "issue parameters (a=2, p0=0.9, e=4, eps1=2, eta_w=0.2, eta_b=0.1, w0=0.2)")
    print(f"{'implementation':52} {'scheme':>8} {'threads':>7} {'replicas':>8} {'rate (wall)':>12} {'per CPU-s':>10}")
    for r in rows:
        print(f"{r['name']:52} {r['scheme']:>8} {r['threads']:7d} {r['replicas']:8d} {r['rate']:12.4g} "
              f"{r['rate_per_cpu_second']:10.4g}")
    for s, rr in ratios.items():
        print(f"{s:>8}: " + ", ".join(f"{k} {v:.1f}x" for k, v in rr.items()))
    if theory_rows:
        print("theory.multinorm.solve to alpha = 50 (defaults), against the baseline in the same run (the finite "
              "volumes with the Scharfetter-Gummel flux on every face at rtol 1e-9: the solver before the speed "
              "work); goal < 2 CPU s per scheme:")
        for r in theory_rows:
            print(f"  {r['scheme']:>8} d={r['d']:>5}: {r['cpu_seconds']:.3f} CPU s ({r['wall_seconds']:.3f} s wall), "
                  f"baseline {r['baseline_cpu_seconds']:.3f} CPU s, {r['speedup_vs_baseline']:.1f}x "
                  f"-> {'met' if r['cpu_seconds'] < 2 else 'NOT met'}")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    write_json(args.out, {"provenance": provenance(params=MultinormParams(), seeds={"init": 0, "plain": 1},
                                                  bench={"d": d, "steps": S, "repeats": args.repeats, "cores": cores,
                                                         "loadavg_at_end": load}),
                          "rows": rows, "ratios": ratios, "theory": theory_rows})
    print(f"wrote {args.out} (load average at the end: {load})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
