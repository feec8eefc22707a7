"""Monte Carlo of online adversarial training in N dimensions: many independent replicas of the real SGD.

    python -m simulate.mc --rho 2 --eps 1 --N 1000 --replicas 32 [--engine full|reduced]

One step (alpha = steps/N; the notation of :mod:`theory.params`): draw tau = +1 with probability p,
xi = tau (rho/2) B + sqrt(v_tau) z with z ~ N(0, I_N); draw the budget e (``eps`` or eps*U from
``eps_law``, by inversion with :func:`theory.params.eps_ppf`); perturb xi_adv = xi - tau e w; with
x = w.xi_adv - b and delta = dL/dx (the loss derivative of :func:`theory.ode.loss_derivative`),

    w <- (w - (eta_w/N) delta xi_adv) / |.|,        b <- b + (eta_b/N) delta,

skipped when ``non_robust_only`` and tau x >= 0 (the perturbed example is classified correctly).

Engines (:mod:`simulate.linear.engines`)
-------
``full``     the literal N-dimensional simulation (numba, replicas in parallel across cores).  It also
             accepts a non-isotropic covariance: ``variances`` (a diagonal per cluster, shape (N,) or
             (2, N)) or a user ``sampler(rng, tau) -> xi`` of shape (len(tau), N).
``reduced``  exact in distribution at finite N for isotropic clusters, O(1) per step: the step depends
             on the fresh input only through h_B = B.xi, h = w.xi and |xi|^2, whose joint law given
             (R, tau) is that of tau rho/2 + sqrt(v) z1, tau rho R/2 + sqrt(v)(R z1 + sqrt(1-R^2) z2) and
             h_B^2 + v z2^2 + v chi2_{N-2}.  Derivation: docs/mc_reduced.md and
             :func:`simulate.kernels.linear.reduced_steps`.

Both start from the ODE's initial condition (R0, b0) (the full engine builds w(0) = R0 B + sqrt(1-R0^2) e
with e a random unit vector orthogonal to B) and record R, b and, through :mod:`theory.errors`, the test
error E and the adversarial error S at ``eps_test`` on the ODE's alpha grid (steps = round(alpha N); the
recorded alpha is steps/N).  With a diagonal covariance, E and S use the exact field variances
q_tau = sum_i w_i^2 v_tau,i; with a user sampler they are estimated on ``n_test`` held-out inputs.

Random numbers: ``numpy.random.SeedSequence(seed).spawn(replicas)``; each replica's kernel streams are
keyed by integers drawn from its own seed sequence (SplitMix64 + ziggurat, see
:mod:`simulate.kernels`).  The same seed gives a bit-identical trajectory, whatever the number of
threads, and a run resumed from a checkpoint is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from theory.params import ParameterError, Params, stable_key

from ..core.cli import (UNFINISHED, ArgumentParser, add_output_arguments, add_param_arguments, check_outputs,
                  one_line_errors,
                  params_from_args, params_line, real, table_indices)
from ..core.grid import check_eps_test, default_alphas
from ..core import resources
from ..core.provenance import check_output, output_lock, provenance, remove_checked, write_result
from ..core.run import (MEMORY_MAX, REPLICAS_MAX, SECONDS_MAX, SEED_MAX, STEPS_MAX, Engine, Execution,  # noqa: F401
                        ReplicaResult, Unfinished, alpha_steps, check_int, drive, execution_from, replica_stats,
                        run_signature)
from ..core.cli import command
from .engines import (LOSS_CODES, QUANTITIES, RENORM_EVERY, FullEngine, ReducedEngine, SamplerEngine,  # noqa: F401
                      eps_chunk, initial_w)

__all__ = ["ENGINES", "MCResult", "Execution", "Unfinished", "run_mc", "validate_run", "alpha_steps", "main",
           "QUANTITIES", "UNFINISHED", "drive", "execution_from", "replica_stats"]

ENGINES = ("full", "reduced")
CHECKPOINT_VERSION = 1

Sampler = Callable[[np.random.Generator, np.ndarray], np.ndarray]


# ---------------------------------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MCResult(ReplicaResult):
    """Replica values of R, b, E, S, each of shape (len(alpha), replicas).

    ``result["R"]`` is a dict with the replica ``mean``, the standard error ``se`` = std/sqrt(replicas)
    and ``std`` over replicas, per alpha.
    """

    params: Params
    N: int
    replicas: int
    engine: str
    seed: int
    eps_test: float
    alpha: np.ndarray
    steps: np.ndarray
    R: np.ndarray
    b: np.ndarray
    E: np.ndarray
    S: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def values(self, q: str) -> np.ndarray:
        if q not in QUANTITIES:
            raise KeyError(f"quantity must be one of {QUANTITIES}, got {q!r}")
        return getattr(self, q)

    def at(self, alpha: float) -> dict[str, float]:
        i = self.index(alpha)
        out = {"alpha": float(self.alpha[i])}
        for q in QUANTITIES:
            out[q] = float(self.mean(q)[i])
            out[q + "_se"] = float(self.se(q)[i])
        return out

    def summary_rows(self):
        """(alpha, R mean, R se, b mean, b se, E mean, E se, S mean, S se) per alpha."""
        cols = [self.alpha]
        for q in QUANTITIES:
            cols += [self.mean(q), self.se(q)]
        return zip(*cols)

    def to_dict(self, replicas: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"alpha": self.alpha, "steps": self.steps, "N": self.N, "replicas": self.replicas,
                               "engine": self.engine, "seed": self.seed, "eps_test": self.eps_test,
                               "info": self.info}
        for q in QUANTITIES:
            out[q] = {"mean": self.mean(q), "se": self.se(q), "std": self.std(q)}
            if replicas:
                out[q]["values"] = self.values(q)
        return out


# ---------------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------------
# Valid N of a run (the other ranges: simulate.core.run)
N_MAX = 1 << 26            # 64 Mi coordinates: one replica's w is then 512 MiB


def _state_bytes(engine: str, N: int, M: int, n_records: int, isotropic: bool) -> int:
    per_replica = (N if engine == "full" else 0) * (8 if isotropic else 24) + 64
    return M * per_replica + 4 * 8 * M * n_records


def validate_run(params: Params, N, replicas, alphas, seed, engine: str, eps_test: float | None,
                 isotropic: bool = True):
    """The one validation of a run's physics and size: (N, M, seed, eps_test, steps, alpha), or ParameterError
    naming the parameter, its range and the reason for the bound."""
    if not isinstance(params, Params):
        raise ParameterError(f"params must be a theory.Params, got {type(params).__name__}")
    N = check_int("N", N, 2, N_MAX, " (memory: one replica holds N doubles)")
    M = check_int("replicas", replicas, 1, REPLICAS_MAX)
    seed = check_int("seed", seed, 0, SEED_MAX, " (an unsigned 64-bit integer)")
    if engine not in ENGINES:
        raise ParameterError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    eps_test = check_eps_test(eps_test, params)
    steps, alpha = alpha_steps(default_alphas() if alphas is None else alphas, N)
    if steps[-1] > STEPS_MAX:
        raise ParameterError(f"alpha_max must be at most 2^53/N = {STEPS_MAX / N:.4g} for N = {N} (the step "
                             f"count alpha N must be exact in float64), got {alpha[-1]:g}")
    need = _state_bytes(engine, N, M, steps.size, isotropic)
    if need > MEMORY_MAX:
        raise ParameterError(f"replicas x N = {M} x {N} with {steps.size} recorded alphas needs "
                             f"{need / 2**30:.3g} GiB, more than the {MEMORY_MAX / 2**30:g} GiB allowed; "
                             "lower --replicas, --N or the grid (--alpha-step)")
    return N, M, seed, eps_test, steps, alpha


def _prepare_covariance(N, B, variances, sampler, engine):
    if B is None:
        B = np.zeros(N)
        B[0] = 1.0
    B = np.asarray(B, dtype=float).ravel()
    if B.shape != (N,) or not np.all(np.isfinite(B)) or abs(np.linalg.norm(B) - 1.0) > 1e-10:
        raise ParameterError(f"B must be a finite unit vector of length N = {N}")
    if variances is not None:
        var = np.asarray(variances, dtype=float)
        if var.ndim == 1:
            var = np.stack([var, var])
        if var.shape != (2, N) or not np.all(np.isfinite(var)) or np.any(var <= 0):
            raise ParameterError(f"variances must be positive, of shape ({N},) or (2, {N}) (clusters +1, -1)")
        variances = np.ascontiguousarray(var)
    if (variances is not None or sampler is not None) and engine != "full":
        raise ParameterError("a non-isotropic covariance (variances or sampler) needs engine='full'")
    if variances is not None and sampler is not None:
        raise ParameterError("give variances or sampler, not both")
    return np.ascontiguousarray(B), variances


def _check_schedule(eps_schedule, N):
    """(break steps, values) of a piecewise-constant budget, or None."""
    if eps_schedule is None:
        return None
    breaks, values = (np.asarray(x, dtype=float).ravel() for x in eps_schedule)
    if (breaks.size == 0 or breaks.size != values.size or breaks[0] != 0 or not np.all(np.isfinite(breaks))
            or np.any(np.diff(breaks) <= 0) or not np.all(np.isfinite(values)) or np.any(values < 0)):
        raise ParameterError("eps_schedule must be (breaks, values) of equal length with breaks increasing from 0 "
                             "and finite values >= 0")
    return np.rint(breaks * N).astype(np.int64), values


def run_mc(params: Params, N: int, replicas: int, alphas=None, seed: int = 0, *, engine: str = "full",
           eps_test: float | None = None, variances=None, B=None, sampler: Sampler | None = None,
           n_test: int = 10000, eps_schedule=None, observe: Callable | None = None,
           execution: Execution | None = None,
           **execution_settings) -> MCResult:
    """Simulate ``replicas`` independent SGD runs in dimension N and record R, b, E, S on ``alphas``.

    ``alphas`` defaults to the ODE's grid (:func:`simulate.core.grid.default_alphas`).  ``eps_test`` defaults as
    in the ODE (the training eps, or 1 for standard training).  How the run is executed (threads, progress
    bar, checkpoint, stopping early) is an :class:`Execution`, given as ``execution=`` or as its fields in
    keywords (``threads=2, checkpoint="run.npz"``).  A run stopped early saves its checkpoint and raises
    :class:`Unfinished`; called again with the same arguments it resumes bit-identically.
    ``eps_schedule = (breaks, values)``: a piecewise-constant mean budget, values[j] from alpha = breaks[j]
    (breaks[0] = 0, increasing) to the next break; the cuts fall on steps round(breaks N) and the state and
    random streams run on across them.
    ``observe(W, b) -> {name: (replicas,) array}`` (full engine, no checkpoint) is called with the weights
    W (replicas, N) at every recorded alpha; its values are returned in ``info['observed'][name]``, shape
    (len(alpha), replicas).
    """
    ex = execution_from(execution, execution_settings, "run_mc")
    N, M, seed, eps_test, steps, alpha = validate_run(params, N, replicas, alphas, seed, engine, eps_test,
                                                      variances is None and sampler is None)
    sched = _check_schedule(eps_schedule, N)
    Bv, variances = _prepare_covariance(N, B, variances, sampler, engine)
    if sampler is not None:
        n_test = check_int("n_test", n_test, 1)

    root = np.random.SeedSequence(seed)
    kernel_seqs, init_seqs = zip(*(child.spawn(2) for child in root.spawn(M)))
    if engine == "reduced":
        eng: Engine = ReducedEngine(params, N, kernel_seqs, eps_test)
    elif sampler is not None:
        eng = SamplerEngine(params, N, kernel_seqs, init_seqs, Bv, sampler, eps_test, root.spawn(1)[0], n_test)
    else:
        eng = FullEngine(params, N, kernel_seqs, init_seqs, Bv, variances, eps_test)

    cov = ("isotropic" if variances is None and sampler is None else
           "diagonal" if sampler is None else f"sampler:{getattr(sampler, '__name__', repr(sampler))}")
    sig = run_signature(params=params.as_dict(), N=N, M=M, seed=seed, engine=engine, steps=steps.tolist(),
                     eps_test=eps_test, cov=cov, B=hashlib.sha256(Bv.tobytes()).hexdigest(),
                     var=None if variances is None else hashlib.sha256(variances.tobytes()).hexdigest(),
                     version=CHECKPOINT_VERSION,
                     **({} if sched is None else {"schedule": [sched[0].tolist(), sched[1].tolist()]}))
    if observe is not None and (engine != "full" or ex.checkpoint is not None):
        raise ParameterError("observe needs engine='full' and no checkpoint")
    observed: dict[str, list] = {}

    def on_record(values):
        if observe is not None:
            for name, v in observe(eng.weights(), values["b"]).items():
                observed.setdefault(name, []).append(np.asarray(v, dtype=float))

    def segment(t, n):  # the budget of the segment that holds step t; cut at the next break
        if sched is None:
            return n
        j = int(np.searchsorted(sched[0], t, side="right")) - 1
        if j + 1 < sched[0].size:
            n = min(n, int(sched[0][j + 1]) - t)
        eng.p = params.replace(eps=float(sched[1][j]))
        return n

    # chunks between progress updates: about 2^22 element-updates (full) or 2^16 steps (reduced) per
    # replica, and at most 2^22 per-example budgets (replicas x chunk) in memory
    chunk = max(1, min((1 << 16) if engine == "reduced" else (1 << 22) // N, (1 << 22) // M))
    if sampler is not None:
        chunk = max(chunk // eng.block, 1) * eng.block  # whole blocks (each block is drawn once)
    rec, wall = drive(eng, steps, M, sig, QUANTITIES, ex, chunk=chunk, desc=f"MC {engine} N={N} x{M}",
                      segment=segment, on_record=on_record)
    info = {"covariance": cov, "errors": "held-out estimate" if sampler is not None else "theory.errors",
            "n_test": n_test if sampler is not None else None, "wall_s": wall, "renorm_every": RENORM_EVERY,
            "rng": "SplitMix64 streams + 256-layer ziggurat (simulate.kernels.rng)" if sampler is None
            else "numpy PCG64 per replica (user sampler)"}
    if observe is not None:
        info["observed"] = {name: np.stack(v) for name, v in observed.items()}
    return MCResult(params, N, M, engine, seed, eps_test, alpha, steps, rec["R"], rec["b"], rec["E"], rec["S"],
                    info)


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------
def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of a Monte Carlo run (shared with simulate.compare)."""
    run = parser.add_argument_group("Monte Carlo run")
    resources.add_force_argument(run)
    run.add_argument("--N", type=int, default=1000, help=f"input dimension N, in [2, {N_MAX}] [default: 1000]")
    run.add_argument("--replicas", type=int, default=32,
                     help=f"independent replicas, in [1, {REPLICAS_MAX}] (and replicas x N x 8 bytes within "
                          f"{MEMORY_MAX >> 30} GiB) [default: 32]")
    run.add_argument("--engine", choices=ENGINES, default="full",
                     help="full: literal N-dimensional SGD; reduced: exact in law, O(1) per step [full]")
    run.add_argument("--seed", type=int, default=0, help="root seed of numpy.random.SeedSequence, in [0, 2^64) [0]")
    run.add_argument("--alpha-max", type=real, default=200.0, metavar="X",
                     help="final alpha = steps/N, as in simulate.ode [200]")
    run.add_argument("--alpha-step", type=real, default=10.0, metavar="X",
                     help="spacing of the output grid; alpha = 10, 50, 200 are always included [10]")
    run.add_argument("--eps-test", type=real, default=None, metavar="X",
                     help="test budget of S, as in simulate.ode [default: the training eps, or 1 if eps = 0]")
    run.add_argument("--variances", type=Path, default=None, metavar="NPY",
                     help="diagonal covariance: a .npy of shape (N,) or (2, N) (clusters +1, -1); "
                          "needs --engine full")
    run.add_argument("--threads", type=int, default=None, help="numba threads, 1 .. NUMBA_NUM_THREADS [all]")


def _load_variances(path: Path | None, N: int, engine: str):
    if path is None:
        return None
    if engine != "full":
        raise ParameterError("--variances needs --engine full (the reduced engine is exact only for isotropic "
                             "clusters)")
    try:
        variances = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ParameterError(f"--variances: cannot read {path}: {err}") from None
    if variances.shape not in ((N,), (2, N)) or not np.issubdtype(variances.dtype, np.number) \
            or not np.all(np.isfinite(variances)) or np.any(variances <= 0):
        raise ParameterError(f"--variances must hold positive values of shape ({N},) or (2, {N}), "
                             f"got shape {variances.shape}")
    return variances


def check_run_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace, params: Params):
    """Validate the run flags through :func:`validate_run` (exit 2 with one line); returns (alphas, variances)."""
    from .ode import default_alphas

    with one_line_errors(parser):
        alphas = default_alphas(args.alpha_max, args.alpha_step)
        variances = _load_variances(args.variances, args.N, args.engine)
        validate_run(params, args.N, args.replicas, alphas, args.seed, args.engine, args.eps_test,
                     variances is None)
        if args.threads is not None:
            Execution(threads=args.threads)
        resources.check(resources.mc_linear(args.N, args.replicas, float(alphas[-1]), len(alphas), args.engine,
                                            args.threads), force=args.force)  # before anything is allocated
    return alphas, variances


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m simulate.mc",
        description="Monte Carlo of online adversarial training in N dimensions: replica mean and standard "
                    "error of R, b, test error E and adversarial error S over alpha = steps/N. "
                    f"Exit status {UNFINISHED}: stopped by --time-limit with the checkpoint written; "
                    "run the same command again to continue.")
    add_param_arguments(parser)
    add_run_arguments(parser)
    out = parser.add_argument_group("output")
    add_output_arguments(out, "write results: .csv (means and standard errors; provenance in PATH.json) or "
                              ".json (also every replica)")
    out.add_argument("--checkpoint", type=Path, default=None, metavar="NPZ",
                     help="checkpoint file: saved every --checkpoint-every seconds; an existing one is resumed")
    out.add_argument("--checkpoint-every", type=real, default=60.0, metavar="S",
                     help=f"seconds, in (0, {SECONDS_MAX:g}] [60]")
    out.add_argument("--time-limit", type=real, default=None, metavar="S",
                     help=f"stop at the next chunk after S seconds, save the checkpoint and exit {UNFINISHED} "
                          "(needs --checkpoint)")
    return parser


def table(res: MCResult) -> str:
    lines = [f"{'alpha':>8} {'R':>21} {'b':>21} {'E':>19} {'S':>19}"]
    rows = list(res.summary_rows())
    for i in table_indices(res.alpha, 0.5 / res.N):
        a, R, Rse, b, bse, E, Ese, S, Sse = rows[i]
        lines.append(f"{a:8.4g} {R:10.6f} ± {Rse:8.6f} {b:10.6f} ± {bse:8.6f} {E:9.6f} ± {Ese:7.6f} "
                     f"{S:9.6f} ± {Sse:7.6f}")
    return "\n".join(lines)


def write_mc_result(res: MCResult, path: Path, run_args: dict[str, Any]) -> None:
    """CSV (means and standard errors; provenance in PATH.json) or JSON (with every replica)."""
    seeds = {"root_seed": res.seed, "replicas": res.replicas,
             "scheme": "numpy.random.SeedSequence(seed).spawn(replicas); kernel keys from each child"}
    prov = provenance(params=res.params, seeds=seeds, N=res.N, engine=res.engine, eps_test=res.eps_test,
                      info=res.info, run=run_args)
    write_result(path, prov, ["alpha", "R_mean", "R_se", "b_mean", "b_se", "E_mean", "E_se", "S_mean", "S_se"],
                 res.summary_rows(), {"result": res.to_dict()})


def header(params: Params) -> str:
    return params_line(params)


@command
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    params = params_from_args(parser, args)
    alphas, variances = check_run_arguments(parser, args, params)
    with contextlib.ExitStack() as stack:
        with one_line_errors(parser):
            execution = Execution(threads=args.threads, progress=not args.quiet, checkpoint=args.checkpoint,
                                  checkpoint_every=args.checkpoint_every,
                                  time_limit=args.time_limit)
            check_outputs(args, stack)
            if args.checkpoint is not None:
                check_output(args.checkpoint, flag="--checkpoint", suffixes=(".npz",))
                stack.enter_context(output_lock(args.checkpoint, flag="--checkpoint"))
        try:
            with one_line_errors(parser):
                res = run_mc(params, args.N, args.replicas, alphas, args.seed, engine=args.engine,
                             eps_test=args.eps_test, variances=variances, execution=execution)
        except Unfinished as stop:
            print(f"{parser.prog}: unfinished: {stop}; run the same command again to continue", file=sys.stderr)
            return UNFINISHED
        if not args.quiet:
            print(f"# Monte Carlo ({res.engine} engine, N={res.N}, {res.replicas} replicas, seed {res.seed}): "
                  f"{header(params)}; S at eps_test={res.eps_test:g}; mean ± standard error")
            print(table(res))
            print(f"# {res.info['wall_s']:.1f} s")
        run_args = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        if args.out is not None:
            write_mc_result(res, args.out, run_args)
            if not args.quiet:
                print(f"wrote {args.out}")
        if args.checkpoint is not None:  # the run is finished and written: its checkpoint has done its job
            remove_checked(args.checkpoint)  # and its SHA-256 record
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
