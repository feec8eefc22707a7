"""The command of the multinorm family: l_inf / l_1 / l_2 / avg / max / SAT adversarial training of a linear
erf classifier on the Tramer-Boneh distribution, by the large-d theory or the N-dimensional Monte Carlo.

    python -m simulate.multinorm --scheme max --d 1000 --engine mc --replicas 16 --out max.json
    python -m simulate.multinorm --scheme avg --d inf                  # the theory's d -> infinity limit

Prints a table over alpha = steps/N (N = d + 1) of the robust weight w0, the threshold b, ubar, L1 and the
clean, l_inf, l_1 and union errors E, S_inf, S_1, union; ``--out FILE.json`` holds the lists ``alphas``,
``w0``, ``b``, ``ubar``, ``L1``, ``Q``, ``wmax``, ``E``, ``S_inf``, ``S_1``, ``union`` (errors; also the
accuracies ``acc_clean``, ``acc_inf``, ``acc_1``, ``acc_union``), ``<key>_se`` for the Monte Carlo, and the
provenance.  Model flags are generated from :class:`theory.multinorm.MultinormParams`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from theory.multinorm import METHODS, MultinormParams, ParameterError, check_d
from theory.multinorm.params import D_MAX as D_MAX_THEORY

from ..core import resources
from ..core.cli import (INTERRUPTED, UNFINISHED, WRITE_FAILED, ArgumentParser, add_output_arguments,
                        add_param_arguments, check_outputs, command, number, one_line_errors, params_from_args,
                        table_indices)
from ..core.provenance import check_output, output_lock, provenance, remove_checked, write_json

__all__ = ["build_parser", "main", "run", "ENGINES", "KEYS", "theory_solve"]

ENGINES = ("theory", "mc")
#: the keys of every result (lists over alphas); the Monte Carlo adds ``<key>_se``
KEYS = ("w0", "b", "ubar", "L1", "Q", "wmax", "E", "S_inf", "S_1", "union")
ALPHA_MAX = 1e4  # alpha = steps/N; beyond, a Monte Carlo run at d = 10^3 takes hours per replica


def _d_flag(text: str):
    try:
        return check_d(text)
    except ParameterError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer in [1, {D_MAX_THEORY}] or inf") from None


def theory_solve(params: MultinormParams, alphas: np.ndarray, d, method: str | None = None) -> dict[str, Any]:
    """The theory's trajectory (:func:`theory.multinorm.solve`) as the command's result body."""
    try:
        from theory.multinorm import solve
    except ImportError:
        raise ParameterError("engine theory: theory.multinorm.solve is not available in this checkout; "
                             "use --engine mc") from None
    opts = {} if method is None else {"method": method}
    sol = solve(params, alphas, d, **opts)
    out: dict[str, Any] = {"alphas": np.asarray(sol["alphas"], dtype=float).tolist()}
    for k in KEYS:
        if k in sol:
            out[k] = np.asarray(sol[k], dtype=float).tolist()
    for k, q in (("acc_clean", "E"), ("acc_inf", "S_inf"), ("acc_1", "S_1"), ("acc_union", "union")):
        if q in out:
            out[k] = (1.0 - np.asarray(out[q])).tolist()
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m simulate.multinorm",
        description="l_inf, l_1, l_2 and multi-perturbation (avg, max, SAT) adversarial training of a linear erf "
                    "classifier on the Tramer-Boneh distribution (x_0 = +-y w.p. p0, x_i = y a/sqrt d + z_i): "
                    "robust weight w0, threshold b, ubar, L1 and the clean, l_inf, l_1 and union errors over "
                    "alpha = steps/N, N = d + 1, by the large-d theory or the N-dimensional Monte Carlo. "
                    f"Exit status {UNFINISHED}: stopped by --time-limit or Ctrl-C with the checkpoint written "
                    f"(run the same command again to continue); {INTERRUPTED}: stopped by Ctrl-C without one; "
                    f"{WRITE_FAILED}: the result could not be written (the previous file is kept).")
    add_param_arguments(parser, params_cls=MultinormParams)
    run = parser.add_argument_group("run")
    run.add_argument("--d", type=_d_flag, default=1000, metavar="D",
                     help=f"number of weak features, an integer in [1, {D_MAX_THEORY}] (the Monte Carlo needs "
                          ">= 2), or inf for the theory's large-d limit [1000]")
    run.add_argument("--engine", choices=ENGINES, default="theory",
                     help="theory: the large-d dynamics at this d (theory.multinorm.solve); mc: replicas of the "
                          "N-dimensional SGD [theory]")
    run.add_argument("--alpha-max", type=number(float, 0.0, ALPHA_MAX, lo_open=True,
                                                 why="beyond, a run at d = 10^3 takes hours per replica"),
                     default=50.0, metavar="X", help="final alpha = steps/N [50]")
    run.add_argument("--alpha-step", type=number(float, 0.0, ALPHA_MAX, lo_open=True), default=1.0, metavar="X",
                     help="spacing of the output grid (at most 10^5 points) [1]")
    run.add_argument("--method", default=None, choices=METHODS,
                     help="solver of the theory (--engine theory): fv finite volumes, particles quantile "
                          "particles, moments the Gaussian moment ODE (std, adv_2 only); gauss_closure and "
                          "no_diffusion are the incomplete variants kept for the checks [fv]")
    mc = parser.add_argument_group("Monte Carlo (--engine mc)")
    resources.add_force_argument(mc)
    mc.add_argument("--replicas", type=number(int, 1, 1 << 20), default=16, metavar="M",
                    help="independent replicas [16]")
    mc.add_argument("--seed", type=number(int, 0, (1 << 64) - 1, why="an unsigned 64-bit integer"), default=0,
                    metavar="S", help="root seed of numpy.random.SeedSequence [0]")
    mc.add_argument("--threads", type=number(int, 1, 4096), default=None, metavar="T",
                    help="numba threads, 1 .. NUMBA_NUM_THREADS [all]")
    mc.add_argument("--checkpoint", type=Path, default=None, metavar="NPZ",
                    help="checkpoint file: saved every --checkpoint-every seconds; an existing one is resumed")
    mc.add_argument("--checkpoint-every", type=number(float, 0.0, 1e7, lo_open=True), default=60.0, metavar="S",
                    help="seconds [60]")
    mc.add_argument("--time-limit", type=number(float, 0.0, 1e7, lo_open=True), default=None, metavar="S",
                    help=f"stop after S seconds at the next chunk, save the checkpoint and exit {UNFINISHED} "
                         "(needs --checkpoint)")
    out = parser.add_argument_group("output")
    add_output_arguments(out, "write the result as JSON (lists over alphas, provenance)")
    return parser


def alpha_grid(alpha_max: float, step: float) -> np.ndarray:
    if alpha_max / step > 1e5:
        raise ParameterError(f"alpha_step must be at least alpha_max/1e5 = {alpha_max / 1e5:.3g}, got {step}")
    grid = np.arange(0.0, alpha_max + 0.5 * step, step)
    return np.unique(np.concatenate([grid[grid <= alpha_max], [alpha_max]]))


def run(params: MultinormParams, args: argparse.Namespace, execution=None) -> dict[str, Any]:
    """The result body of one invocation (engine, d and grid from the parsed flags)."""
    alphas = alpha_grid(args.alpha_max, args.alpha_step)
    if args.engine == "theory":
        return theory_solve(params, alphas, args.d, args.method)
    from .mc import run_multinorm_mc

    res = run_multinorm_mc(params, args.d, args.replicas, alphas, args.seed, execution=execution)
    body = res.summary()
    body["wall_s"] = res.info["wall_s"]
    return body


def table(body: dict[str, Any], N: float) -> str:
    se = "E_se" in body
    cols = ("w0", "b", "ubar", "L1", "E", "S_inf", "S_1", "union")
    w = 20 if se else 9
    lines = [f"{'alpha':>8} " + " ".join(f"{c:>{w}}" for c in cols)]
    alpha = np.asarray(body["alphas"])
    for i in table_indices(alpha, 0.5 / N if math.isfinite(N) else 1e-9):
        cells = []
        for c in cols:
            v = body[c][i]
            cells.append(f"{v:9.5f} ± {body[c + '_se'][i]:8.5f}" if se else f"{v:9.5f}")
        lines.append(f"{alpha[i]:8.4g} " + " ".join(f"{c:>{w}}" for c in cells))
    return "\n".join(lines)


@command
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    params = params_from_args(parser, args, MultinormParams)
    from ..core.run import Execution, Unfinished

    with one_line_errors(parser):
        if args.engine == "mc":
            if math.isinf(args.d):
                raise ParameterError("d must be an integer >= 2 for --engine mc (inf is the theory's limit)")
            from .mc import QUANTITIES, validate_multinorm_run

            grid = alpha_grid(args.alpha_max, args.alpha_step)
            validate_multinorm_run(params, args.d, args.replicas, grid, args.seed)
            resources.check(resources.multinorm_mc(args.d, args.replicas, float(grid[-1]), len(grid), len(QUANTITIES),
                                                   args.threads), force=args.force)  # before anything is allocated
        else:
            alpha_grid(args.alpha_max, args.alpha_step)
            for flag in ("checkpoint", "time_limit", "threads"):
                if getattr(args, flag) is not None:
                    raise ParameterError(f"{flag} applies to --engine mc only")
    with contextlib.ExitStack() as stack:
        with one_line_errors(parser):
            execution = None
            if args.engine == "mc":
                execution = Execution(threads=args.threads, progress=not args.quiet, checkpoint=args.checkpoint,
                                      checkpoint_every=args.checkpoint_every, time_limit=args.time_limit)
            check_outputs(args, stack, out_suffixes=(".json",))
            if args.checkpoint is not None:
                check_output(args.checkpoint, flag="--checkpoint", suffixes=(".npz",))
                stack.enter_context(output_lock(args.checkpoint, flag="--checkpoint"))
        try:
            with one_line_errors(parser):
                body = run(params, args, execution)
        except Unfinished as stop:
            print(f"{parser.prog}: unfinished: {stop}; run the same command again to continue", file=sys.stderr)
            return UNFINISHED
        N = args.d + 1
        if not args.quiet:
            what = (f"Monte Carlo, d={args.d}, {args.replicas} replicas, seed {args.seed}; mean ± standard error"
                    if args.engine == "mc" else f"theory, d={args.d}")
            print(f"# multinorm ({what}): {params.line()}; errors E (clean), S_inf, S_1, union")
            print(table(body, N))
        if args.out is not None:
            run_args = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
            seeds = ({"root_seed": args.seed, "replicas": args.replicas,
                      "scheme": "numpy.random.SeedSequence(seed).spawn(replicas); kernel keys from each child"}
                     if args.engine == "mc" else None)
            prov = provenance(params=params, seeds=seeds, engine=args.engine, d=args.d, run=run_args)
            write_json(args.out, {**body, "d": args.d, "engine": args.engine, "provenance": prov})
            if not args.quiet:
                print(f"wrote {args.out}")
        if args.checkpoint is not None:  # the run is finished and written: its checkpoint has done its job
            remove_checked(args.checkpoint)  # and its SHA-256 record
    return 0
