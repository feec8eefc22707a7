"""Benchmark: the structured-data theory at N = 784 to alpha = 100 against a Monte Carlo of equal accuracy.

Wall and CPU (process) seconds are both reported: on a shared machine the wall time of the O(N^3) full path
is dominated by waiting.  Goal: one shared-covariance (spectral) trajectory in under 2 s; the full-matrix path (non-commuting class
covariances) timed too.  Baseline in the same run: the Monte Carlo of the same mixture (numba engine of
simulate.mc) timed on a few replicas and extrapolated to the number of replicas whose standard error of E at
alpha = 100 equals the theory's own accuracy at this N, the finite-size allowance c/N of the check
(simulate.structured.MC_BIAS['E']/N = 6.4e-4 at N = 784): a Monte Carlo cannot be more useful than that.

    python bench/structured.py [--replicas 8] [--out bench/out/structured.json]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulate.core.cli import ArgumentParser  # noqa: E402  (one-line errors, whole flag names only)

from simulate.provenance import provenance, write_json  # noqa: E402
from simulate.structured import MC_BIAS, integrate, monte_carlo, powerlaw_mixture  # noqa: E402
from theory import Params  # noqa: E402
from theory.structured import Mixture  # noqa: E402


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--N", type=int, default=784)
    parser.add_argument("--alpha-max", type=float, default=100.0)
    parser.add_argument("--replicas", type=int, default=8, help="Monte Carlo replicas actually run [8]")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the spectral trajectory [3]")
    parser.add_argument("--skip-full", action="store_true", help="skip the full-matrix path")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "structured.json")
    args = parser.parse_args(argv)

    N = args.N
    p = Params(eps=1.0, eta_w=0.5, prior=0.45)
    alphas = np.linspace(0.0, args.alpha_max, 11)
    spec = powerlaw_mixture(N, power=1.0, ratio=2.0)
    rows = []

    times, cpus = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        ts = integrate(spec, p, alphas)
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    t_spec = float(np.median(times))
    rows.append({"what": "theory, shared eigenbasis (2N+1 numbers)", "seconds": t_spec, "cpu_s": float(np.median(cpus)),
                 "nfev": ts.solver["nfev"], "E_end": float(ts.E[-1])})

    t_full = None
    if not args.skip_full:
        rng = np.random.default_rng(0)
        U, _ = np.linalg.qr(rng.normal(size=(N, N)))
        S_m = 2.0 * U @ np.diag(spec.lam[0][::-1]) @ U.T
        full = Mixture.from_covariances(spec.mu[0], spec.mu[1], np.diag(spec.lam[0]), S_m)
        t0, c0 = time.perf_counter(), time.process_time()
        tf = integrate(full, p, alphas, rtol=1e-8, atol=1e-10)
        t_full = time.perf_counter() - t0
        rows.append({"what": "theory, full N x N covariance (non-commuting), rtol 1e-8", "seconds": t_full,
                     "cpu_s": time.process_time() - c0,
                     "nfev": tf.solver["nfev"], "E_end": float(tf.E[-1])})

    t0, c0 = time.perf_counter(), time.process_time()
    mc = monte_carlo(spec, p, args.replicas, alphas, seed=0)
    t_mc = time.perf_counter() - t0
    c_mc = time.process_time() - c0
    std_E = float(mc["E"][-1].std(ddof=1))
    target = MC_BIAS["E"] / N
    needed = max(1, math.ceil((std_E / target) ** 2))
    t_equal = t_mc / args.replicas * needed
    rows.append({"what": f"Monte Carlo, {args.replicas} replicas (run)", "seconds": t_mc, "cpu_s": c_mc,
                 "E_end": float(mc["E"][-1].mean()), "E_se": std_E / math.sqrt(args.replicas)})
    rows.append({"what": f"Monte Carlo of equal accuracy: {needed} replicas for se(E) = {target:.2g} (extrapolated)",
                 "seconds": t_equal, "cpu_s": c_mc / args.replicas * needed})

    print(f"# structured theory vs Monte Carlo, N = {N}, alpha = 0..{args.alpha_max:g}, power-law spectrum")
    print(f"{'route':82} {'wall s':>9} {'cpu s':>9}")
    for r in rows:
        print(f"{r['what']:82} {r['seconds']:9.3f} {r['cpu_s']:9.3f}")
    print(f"spectral theory: {t_spec:.3f} s (goal < 2 s: {'met' if t_spec < 2 else 'NOT met'}); "
          f"Monte Carlo of equal accuracy / spectral theory = {t_equal / t_spec:.0f}x"
          + (f"; / full-matrix theory = {t_equal / t_full:.1f}x" if t_full else ""))
    write_json(args.out, {"provenance": provenance(params=p, seeds={"mc_seed": 0}, N=N, alpha_max=args.alpha_max,
                                                   replicas=args.replicas),
                          "rows": rows, "ratio_mc_over_spectral": t_equal / t_spec,
                          "ratio_mc_over_full": (t_equal / t_full) if t_full else None})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
