"""Benchmark of the committee machine's ODE and Monte Carlo.

ODE: each configuration at the default accuracy (rtol 1e-6), CPU seconds of the current code path ("after": the
default rule, numba right-hand side, LSODA) against the former one in the same run ("before": theory's numpy
right-hand side with the former default rule, Gauss-Hermite 96 / 28 nodes per dimension for K = 1 / 2 and
2^13 (K <= 4) or 2^14 Sobol points with mirrors, RK45); beside each the estimated quadrature error of the drift
at the initial and the final state (theory.committee.drift_error with the default rule), relative to max |drift| and
absolute (the relative error grows without bound near a fixed point, where the drift vanishes).  Configurations:
the four physics tables of simulate.mc_committee to alpha = 200, the xor preset (K = 4, eps 1) to alpha = 200, xor
K = 6 to alpha = 200, and the large-learning-rate xor case (K = 4, rho 4, v 0.5, eta_w 0.5, eta_b 0.2, eps 0.5, v0 =
(1, 1, -1, -1)) to ``--issue-alpha`` 50 (at sum |v| = 4 sigma - tau changes sign and the integrand jumps: the former
code path with its fixed nodes takes thousands of solver steps, so its row runs only to ``--issue-alpha-before`` 5;
the line rule's drift is continuous and takes ~450 right-hand sides to alpha 50), and its first two units (K = 2,
v0 = (1, 1)) to alpha 50, whose "before" is the former jump default ``line:32`` on the same code path (a K = 2 jump
case with the former fixed Gauss-Hermite nodes would measure the solver's struggle, not the rule); rows with
``gap_to_reference`` give the largest distance of the final state from the stored converged run
(tests/data/committee_large_rate_k2_reference.json: vline:10, LSODA rtol 1e-9).

Command: ``python -m simulate.committee --preset xor --quiet`` (K = 2, FGSM eps 1, to alpha = 200) as a subprocess,
its CPU seconds (user + system, imports included), "before" with ``--errors`` (E and S on the printed rows, the
former default) and "after" as it is now (E and S only when asked).

Monte Carlo: the rate at N = 10^4 (numba kernel, replicas in parallel) against a straightforward numpy loop of
the same SGD with the same N-dimensional PGD attack.

    python bench/committee.py [--steps 2000] [--replicas 4] [--issue-alpha 50] [--out bench/out/committee.json]
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulate.core.cli import ArgumentParser  # noqa: E402  (one-line errors, whole flag names only)

from simulate.committee import integrate, kernel_averages  # noqa: E402
from simulate.provenance import provenance, write_json  # noqa: E402
from theory.committee import CommitteeParams, drift_error  # noqa: E402


def _former_rule(K: int) -> str:
    """The default drift rule before the error-controlled rules: Gauss-Hermite for K <= 2, Sobol for K >= 3."""
    return {1: "gh:96", 2: "gh:28"}.get(K, "qmc:13" if K <= 4 else "qmc:14")


def numpy_loop(p: CommitteeParams, N: int, steps: int, seed: int = 0) -> float:
    """Steps per second of a plain numpy implementation (one replica)."""
    from scipy.special import erf

    rng = np.random.default_rng(seed)
    mix = p.mixture()
    K = p.K
    W = rng.standard_normal((K, N))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    b = np.zeros(K)
    v = np.asarray(p.v0, float)
    B = np.eye(p.D, N)
    t0 = time.perf_counter()
    for _ in range(steps):
        c = rng.choice(len(mix.priors), p=mix.priors)
        tau = mix.labels[c]
        xi = mix.means[c] @ B + math.sqrt(mix.variances[c]) * rng.standard_normal(N)
        delta = np.zeros(N)
        for _s in range(p.pgd_steps):
            lam = W @ (xi + delta) - b
            sig = v @ erf(lam)
            g = ((sig - tau) * v * 2 / math.sqrt(math.pi) * np.exp(-lam * lam)) @ W
            delta = delta + p.pgd_step * p.eps * g / np.linalg.norm(g)
            nd = np.linalg.norm(delta)
            if nd > p.eps:
                delta *= p.eps / nd
        xt = xi + delta
        lam = W @ xt - b
        sig = v @ erf(lam)
        e = (sig - tau) * v * 2 / math.sqrt(math.pi) * np.exp(-lam * lam)
        W -= (p.eta_w / N) * np.outer(e, xt)
        W /= np.linalg.norm(W, axis=1, keepdims=True)
        b += p.eta_b / N * e
    return steps / (time.perf_counter() - t0)


def numba_rate(p: CommitteeParams, N: int, steps: int, replicas: int) -> float:
    """Replica-steps per second of run_committee_mc (after a warm-up that compiles the kernels)."""
    from simulate.mc_committee import run_committee_mc

    run_committee_mc(p, 64, 1, [0.0, 1.0], n_test=1)
    alpha = steps / N
    t0 = time.perf_counter()
    run_committee_mc(p, N, replicas, [0.0, alpha], n_test=1)
    return replicas * steps / (time.perf_counter() - t0)


def command_row() -> dict:
    """CPU seconds (user + system of the child) of the xor preset's whole command, with --errors and without."""
    import os
    import resource
    import subprocess

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    row = {"what": "command --preset xor (K=2, eps 1, alpha 200)", "goal_cpu_s": 3.0}
    for tag, extra in (("before", ["--errors"]), ("after", [])):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-m", "simulate.committee", "--preset", "xor", "--quiet", *extra], cwd=root,
                       env=env, check=True)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        row[f"cpu_s_{tag}"] = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        row[f"flags_{tag}"] = " ".join(extra)
    return row


def main(argv=None) -> int:
    ap = ArgumentParser(prog="python bench/committee.py", description=__doc__)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--baseline-steps", type=int, default=300)
    ap.add_argument("--replicas", type=int, default=4)
    ap.add_argument("--N", type=int, default=10_000)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "committee.json")
    ap.add_argument("--issue-alpha", type=float, default=50.0, help="final alpha of the issue-26 case [50]")
    ap.add_argument("--issue-alpha-before", type=float, default=5.0,
                    help="final alpha of the issue-26 case with the former code path [5: to 50 it takes > 15 min]")
    ap.add_argument("--only", default=None, help="only the ODE configurations whose name contains this")
    ap.add_argument("--no-mc", action="store_true", help="skip the Monte Carlo rows")
    args = ap.parse_args(argv)
    rows = []
    from simulate.mc_committee import large_rate_case, table_cases

    issue = large_rate_case()
    configs = [(name, p, 200.0, None) for name, p in table_cases().items()]
    configs += [("xor preset K=4 eps 1", CommitteeParams(preset="xor", K=4, eps=1.0), 200.0, 3.0),
                ("xor K=6 eps 1", CommitteeParams(preset="xor", K=6, eps=1.0), 200.0, 10.0),
                ("xor K=4 eta_w 0.5, v0 +-1 (issue 26)", issue, args.issue_alpha, 10.0)]
    if args.issue_alpha_before is not None:
        configs[-1] = configs[-1][:2] + ((args.issue_alpha_before, args.issue_alpha),) + configs[-1][3:]
    k2 = "xor K=2 eta_w 0.5, v0 (1, 1): jump"
    configs.append((k2, large_rate_case(2), 50.0, None))
    before_kw = {k2: dict(rule="line:32")}  # the former jump default
    k2_reference = json.loads((ROOT / "tests" / "data" / "committee_large_rate_k2_reference.json").read_text())
    integrate(CommitteeParams(preset="talk", K=2), [0.0, 1.0], error_alphas=[])  # compiles the kernel
    for name, p, amax, goal in configs:
        if args.only and args.only not in name:
            continue
        a_before, a_after = amax if isinstance(amax, tuple) else (amax, amax)
        row = {"what": f"ODE {name} to alpha={a_after:g}" + (f" (before: to {a_before:g})" if a_before != a_after
                                                              else ""), "goal_cpu_s": goal}
        former = before_kw.get(name, dict(backend="numpy", rule=_former_rule(p.K), method="RK45"))
        for tag, kw, a_end in (("before", former, a_before), ("after", {}, a_after)):
            c0 = time.process_time()
            traj = integrate(p, [0.0, a_end], error_alphas=[], **kw)
            row[f"cpu_s_{tag}"] = time.process_time() - c0
            row[f"nfev_{tag}"] = traj.solver["nfev"]
            row[f"rule_{tag}"] = traj.solver["rule"]
            row[f"y_{tag}"] = traj.y[-1]
        for where, st in (("start", p.initial_state()), ("end", traj.state(1))):
            y, err = drift_error(st, p, backend=kernel_averages)
            row[f"quad_error_abs_{where}"] = float(np.max(err))
            row[f"quad_error_rel_{where}"] = float(np.max(err) / np.max(np.abs(y)))
        row["quad_error_rel"] = row["quad_error_rel_end"]
        if a_before == a_after:
            row["max_abs_y_change"] = float(np.max(np.abs(row["y_after"] - row["y_before"])))
        if name == k2 and k2_reference["alpha"][-1] == a_after:
            end = np.asarray(k2_reference["y"][-1])
            for tag in ("before", "after"):
                row[f"gap_to_reference_{tag}"] = float(np.max(np.abs(row[f"y_{tag}"] - end)))
        rows.append(row)
        print(f"{row['what']:52} before {row['cpu_s_before']:7.2f} s ({row['nfev_before']} rhs, {row['rule_before']})"
              f"  after {row['cpu_s_after']:6.2f} s ({row['nfev_after']} rhs, {row['rule_after']})"
              f"  ratio {row['cpu_s_before'] / row['cpu_s_after']:5.1f}x  quad err rel {row['quad_error_rel_start']:.1e} / "
              f"{row['quad_error_rel_end']:.1e}, abs {row['quad_error_abs_start']:.1e} / {row['quad_error_abs_end']:.1e}"
              + (f"  goal < {goal:g} s: {'met' if row['cpu_s_after'] < goal else 'NOT met'}" if goal else "")
              + (f"  gap to the converged run {row['gap_to_reference_before']:.1e} -> "
                 f"{row['gap_to_reference_after']:.1e}" if "gap_to_reference_after" in row else ""),
              flush=True)
    if not args.only or args.only in "command":
        rows.append(command_row())
        r = rows[-1]
        print(f"{r['what']:52} before {r['cpu_s_before']:7.2f} s  after {r['cpu_s_after']:6.2f} s  goal < 3 s: "
              f"{'met' if r['cpu_s_after'] < 3.0 else 'NOT met'}", flush=True)
    for preset, K in (() if args.no_mc else (("talk", 2), ("xor", 4))):
        p = CommitteeParams(preset=preset, K=K, eps=1.0)
        base = numpy_loop(p, args.N, args.baseline_steps)
        fast = numba_rate(p, args.N, args.steps, args.replicas)
        rows.append({"what": f"MC {preset} K={K} N={args.N} FGSM: replica-steps/s", "numba": fast, "numpy": base,
                     "ratio": fast / base})
    for r in rows:
        if "numba" in r:
            print(f"{r['what']:40} numba {r['numba']:9.0f}  numpy {r['numpy']:9.0f}  ratio {r['ratio']:.1f}x")
    write_json(args.out, {"provenance": provenance(params=vars(args)), "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
