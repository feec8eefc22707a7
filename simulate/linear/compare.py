"""ODE against Monte Carlo for the same parameters: deviations in units of the standard error.

    python -m simulate.compare --rho 2 --eps 1 --N 1000 --replicas 32 [--engine full|reduced]

integrates the large-N ODEs (:func:`simulate.ode.integrate`) on the alpha grid that the Monte Carlo
actually simulated (steps/N), runs the Monte Carlo (:func:`simulate.mc.run_mc`) from the same initial
condition, and prints, per alpha and per quantity (R, b, E, S), the ODE value, the replica mean ± standard
error and z = (mean - ODE)/se.  The verdict uses the check of :func:`check`:

    |mean - ODE| <= q se + c/N + solver error          at every alpha > 0 and every quantity,

with q the two-sided normal quantile Sidak-corrected for the number m of comparisons at family-wise
level ``familywise`` (so that a correct ODE fails with probability <= familywise when the replica means
are normal), c/N the finite-size allowance of ``TOLERANCES`` and the ODE's stated error.
"""

from __future__ import annotations

import argparse
import contextlib
import math

import numpy as np

from ..core.cli import (ArgumentParser, add_output_arguments, add_param_arguments, check_outputs, one_line_errors,
                  params_from_args, real)
from ..core.compare import TOLERANCES, Comparison, check, sidak_quantile  # noqa: F401 (this command's names)
from ..core.provenance import provenance, write_json
from ..core.cli import command
from .mc import QUANTITIES, add_run_arguments, check_run_arguments, header, run_mc
from .ode import integrate

__all__ = ["TOLERANCES", "sidak_quantile", "Comparison", "check", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m simulate.compare",
                            description="Run the large-N ODEs and the Monte Carlo for the same parameters and "
                                        "print the deviation of the replica means in units of the standard error.")
    add_param_arguments(parser)
    add_run_arguments(parser)
    out = parser.add_argument_group("check and output")
    out.add_argument("--familywise", type=real, default=TOLERANCES["familywise"], metavar="X",
                     help=f"family-wise false-alarm level of the check (0 < X < 1) [{TOLERANCES['familywise']}]")
    out.add_argument("--strict", action="store_true", help="exit with status 1 when the check fails")
    add_output_arguments(out, "write the comparison (.json)")
    out.add_argument("--talk", action="store_true",
                     help="the four scenarios of the talk (simulate.scenarios; S at eps = 1) at alpha = 10, 50, "
                          "200 instead of the parameter flags: ODE vs MC mean ± standard error")
    return parser


def talk_table(N: int, replicas: int, engine: str, seed: int, progress: bool = True, threads=None):
    """ODE vs Monte Carlo for the talk's scenarios at alpha = 10, 50, 200 (rows of dicts)."""
    from .scenarios import EPS_TEST, REPORT_ALPHAS, TALK_SCENARIOS

    rows = []
    for name, p in TALK_SCENARIOS.items():
        res = run_mc(p, N, replicas, [0.0, *REPORT_ALPHAS], seed, engine=engine, eps_test=EPS_TEST,
                     progress=progress, threads=threads)
        traj = integrate(p, res.alpha, eps_test=EPS_TEST)
        cmp = check(traj, res)
        for i, a in enumerate(res.alpha):
            if a == 0:
                continue
            row = {"scenario": name, "alpha": float(a), "N": N, "replicas": replicas, "engine": engine,
                   "wall_s": res.info["wall_s"], "check_passed": cmp.passed}
            for q in QUANTITIES:
                row[q] = {"ode": float(getattr(traj, q)[i]), "mean": float(res.mean(q)[i]),
                          "se": float(res.se(q)[i])}
            rows.append(row)
    return rows


@command
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    params = params_from_args(parser, args)
    alphas, variances = check_run_arguments(parser, args, params)
    if variances is not None:
        parser.error("--variances: the ODEs hold for isotropic clusters only; compare needs isotropic data")
    if not (math.isfinite(args.familywise) and 1e-12 <= args.familywise < 1):
        parser.error(f"--familywise must lie in [1e-12, 1) (a probability; below, the Sidak quantile loses "
                     f"its digits), got {args.familywise}")
    with contextlib.ExitStack() as stack:
        with one_line_errors(parser):
            check_outputs(args, stack, out_suffixes=(".json",))
        return _run(parser, args, params, alphas)


def _run(parser, args, params, alphas) -> int:
    if args.talk:
        rows = talk_table(args.N, args.replicas, args.engine, args.seed, progress=not args.quiet,
                          threads=args.threads)
        print(f"# talk scenarios, {args.engine} engine, N={args.N}, {args.replicas} replicas, seed {args.seed}; "
              f"ODE | MC mean ± standard error; S at eps = 1")
        print(f"{'scenario':22} {'alpha':>5} " + " ".join(f"{q + ' (ODE | MC)':>30}" for q in QUANTITIES))
        for r in rows:
            print(f"{r['scenario']:22} {r['alpha']:5g} " + " ".join(
                f"{r[q]['ode']:9.5f} | {r[q]['mean']:9.5f} ± {r[q]['se']:7.5f}" for q in QUANTITIES))
        print("check (all alphas, all quantities) per scenario: " + ", ".join(
            f"{r['scenario']}: {'pass' if r['check_passed'] else 'FAIL'}" for r in rows[::3]))
        if args.out is not None:
            write_json(args.out, {"provenance": provenance(seeds={"root_seed": args.seed, "replicas": args.replicas},
                                                           N=args.N, engine=args.engine, tolerances=TOLERANCES),
                                  "rows": rows})
        return 0 if not args.strict or all(r["check_passed"] for r in rows) else 1
    with one_line_errors(parser):
        res = run_mc(params, args.N, args.replicas, alphas, args.seed, engine=args.engine, eps_test=args.eps_test,
                     threads=args.threads, progress=not args.quiet)
    traj = integrate(params, res.alpha, eps_test=res.eps_test)
    cmp = check(traj, res, familywise=args.familywise)
    if not args.quiet:
        print(f"# ODE vs Monte Carlo ({res.engine} engine, N={res.N}, {res.replicas} replicas, seed {res.seed}): "
              f"{header(params)}; S at eps_test={res.eps_test:g}")
        print(f"# z = (MC mean - ODE)/standard error; check |MC - ODE| <= q se + c/N with q = {cmp.q:.3f} "
              f"(Sidak, {cmp.m} comparisons, family-wise {args.familywise:g}), c = {TOLERANCES['bias']}")
        print(cmp.table())
    verdict = "consistent" if cmp.passed else "INCONSISTENT"
    zmax = max(float(np.max(np.abs(cmp.z(n)))) for n in cmp.quantities)
    print(f"{verdict}: max |z| = {zmax:.2f} over {cmp.m} comparisons (q = {cmp.q:.3f})")
    for line in cmp.failures():
        print("  " + line)
    if args.out is not None:
        write_json(args.out, {
            "provenance": provenance(params=params, seeds={"root_seed": res.seed, "replicas": res.replicas},
                                     N=res.N, engine=res.engine, eps_test=res.eps_test, tolerances=TOLERANCES),
            "alpha": cmp.alpha, "q": cmp.q, "m": cmp.m, "passed": cmp.passed,
            **{n: {"ode": cmp.ode[n], "mean": cmp.mean[n], "se": cmp.se[n], "z": cmp.z(n)} for n in cmp.quantities}})
    return 1 if (args.strict and not cmp.passed) else 0


if __name__ == "__main__":
    raise SystemExit(main())
