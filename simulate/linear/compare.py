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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import ndtri

from theory.params import ParameterError

from ..core.cli import (ArgumentParser, add_output_arguments, add_param_arguments, check_outputs, one_line_errors,
                  params_from_args, real)
from .mc import QUANTITIES, MCResult, add_run_arguments, check_run_arguments, header, run_mc
from .ode import STATED_ERROR, Trajectory, integrate
from ..core.provenance import provenance, write_json
from ..core.cli import command

__all__ = ["TOLERANCES", "sidak_quantile", "Comparison", "check", "main"]

#: Tolerances of the ODE-vs-Monte-Carlo check, in one place.
#:  familywise  probability that a correct ODE fails the whole check (normal replica means)
#:  bias        finite-size allowance c/N per quantity.  The mean of the N-dimensional SGD differs from the
#:              N -> infinity ODE by O(1/N) (discrete steps of 1/N in alpha, fluctuations of |xi|^2, and
#:              the curvature of E, S in (R, b) times Var ~ 1/N).  Measured with the reduced engine
#:              (4000 replicas, N = 50, 100, 200, 1000; scenario 1 and 2 of the talk, cross-entropy with
#:              exponential budgets, non-robust-only; alpha <= 200): max |mean - ODE| N = 0.25 (R),
#:              0.19 (E), 0.19 (S); b's bias is below its noise (|z| < 2.5).  c = 0.5 leaves a factor 2.
#:  solver      the ODE's stated absolute error (simulate.ode.STATED_ERROR)
TOLERANCES: dict[str, Any] = {
    "familywise": 1e-3,
    "bias": {"R": 0.5, "b": 0.5, "E": 0.5, "S": 0.5},
    "solver": STATED_ERROR,
}


def sidak_quantile(m: int, familywise: float = TOLERANCES["familywise"]) -> float:
    """Two-sided normal quantile q with P(max of m independent |Z| > q) = familywise."""
    if m < 1 or not 0 < familywise < 1:
        raise ParameterError(f"need m >= 1 and 0 < familywise < 1, got m={m}, familywise={familywise}")
    per_test = -math.expm1(math.log1p(-familywise) / m)  # 1 - (1 - familywise)^(1/m)
    return float(ndtri(1.0 - 0.5 * per_test))


@dataclass(frozen=True)
class Comparison:
    """Per-alpha deviations of the replica means from the ODE."""

    alpha: np.ndarray
    ode: dict[str, np.ndarray]
    mean: dict[str, np.ndarray]
    se: dict[str, np.ndarray]
    allowance: dict[str, float]
    q: float
    m: int
    quantities: tuple[str, ...]

    def deviation(self, name: str) -> np.ndarray:
        return self.mean[name] - self.ode[name]

    def z(self, name: str) -> np.ndarray:
        se = self.se[name]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(se > 0, self.deviation(name) / se, 0.0)

    def ok(self, name: str) -> np.ndarray:
        return np.abs(self.deviation(name)) <= self.q * self.se[name] + self.allowance[name]

    @property
    def passed(self) -> bool:
        return all(bool(np.all(self.ok(n))) for n in self.quantities)

    def failures(self) -> list[str]:
        """One line per failed comparison with the absolute and relative error."""
        out = []
        for n in self.quantities:
            for i in np.flatnonzero(~self.ok(n)):
                d = float(self.deviation(n)[i])
                ref = float(self.ode[n][i])
                rel = abs(d) / abs(ref) if ref != 0 else math.inf
                out.append(f"{n} at alpha={self.alpha[i]:g}: MC {self.mean[n][i]:.6g} ± {self.se[n][i]:.3g}, "
                           f"ODE {ref:.6g}; |error| {abs(d):.3g} (relative {rel:.3g}) > "
                           f"q se + allowance = {self.q * self.se[n][i] + self.allowance[n]:.3g}")
        return out

    def table(self) -> str:
        lines = [f"{'alpha':>8} " + " ".join(f"{n + ' ODE':>10} {n + ' MC':>19} {'z':>6}" for n in self.quantities)]
        for i, a in enumerate(self.alpha):
            cells = [f"{self.ode[n][i]:10.6f} {self.mean[n][i]:9.6f}±{self.se[n][i]:8.6f} {self.z(n)[i]:6.2f}"
                     for n in self.quantities]
            lines.append(f"{a:8.4g} " + " ".join(cells))
        return "\n".join(lines)


def check(traj: Trajectory, res: MCResult, quantities=QUANTITIES, familywise: float | None = None,
          bias: dict[str, float] | None = None) -> Comparison:
    """Compare the replica means of ``res`` with the ODE ``traj`` (same grid) at every alpha > 0."""
    familywise = TOLERANCES["familywise"] if familywise is None else familywise
    bias = TOLERANCES["bias"] if bias is None else bias
    if traj.alpha.shape != res.alpha.shape or not np.allclose(traj.alpha, res.alpha, rtol=0, atol=1e-12):
        raise ParameterError("the ODE trajectory and the Monte Carlo must share one alpha grid")
    keep = res.alpha > 0
    quantities = tuple(quantities)
    m = int(keep.sum()) * len(quantities)
    if m == 0:
        raise ParameterError("nothing to compare: the grid has no alpha > 0")
    q = sidak_quantile(m, familywise)
    return Comparison(alpha=res.alpha[keep],
                      ode={n: np.asarray(getattr(traj, n))[keep] for n in quantities},
                      mean={n: res.mean(n)[keep] for n in quantities},
                      se={n: res.se(n)[keep] for n in quantities},
                      allowance={n: bias[n] / res.N + TOLERANCES["solver"] for n in quantities},
                      q=q, m=m, quantities=quantities)


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
