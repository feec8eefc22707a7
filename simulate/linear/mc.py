"""Monte Carlo of online adversarial training in N dimensions: many independent replicas of the real SGD.

    python -m simulate.mc --rho 2 --eps 1 --N 1000 --replicas 32 [--engine full|reduced]

One step (alpha = steps/N; the notation of :mod:`theory.params`): draw tau = +1 with probability p,
xi = tau (rho/2) B + sqrt(v_tau) z with z ~ N(0, I_N); draw the budget e (``eps`` or eps*U from
``eps_law``, by inversion with :func:`theory.params.eps_ppf`); perturb xi_adv = xi - tau e w; with
x = w.xi_adv - b and delta = dL/dx (the loss derivative of :func:`theory.ode.loss_derivative`),

    w <- (w - (eta_w/N) delta xi_adv) / |.|,        b <- b + (eta_b/N) delta,

skipped when ``non_robust_only`` and tau x >= 0 (the perturbed example is classified correctly).

Engines
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
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from theory.errors import adversarial_error, test_error
from theory.params import ParameterError, Params, eps_ppf, stable_key

from ..core.cli import (UNFINISHED, ArgumentParser, add_output_arguments, add_param_arguments, check_outputs,
                  one_line_errors,
                  params_from_args, params_line, real, table_indices)
from ..core.grid import check_eps_test, default_alphas
from ..core.provenance import check_output, output_lock, provenance, remove_checked, write_result
from ..core.run import (MEMORY_MAX, REPLICAS_MAX, SECONDS_MAX, SEED_MAX, STEPS_MAX, Engine, Execution, Unfinished,
                        alpha_steps, check_int, drive, execution_from, replica_stats, run_signature)
from ..core.cli import command

__all__ = ["ENGINES", "MCResult", "Execution", "Unfinished", "run_mc", "validate_run", "alpha_steps", "main",
           "QUANTITIES", "UNFINISHED", "drive", "execution_from", "replica_stats"]

ENGINES = ("full", "reduced")
QUANTITIES = ("R", "b", "E", "S")
LOSS_CODES = {"quadratic": 0, "cross_entropy": 1}
RENORM_EVERY = 128  # exact renormalisation of w in the full engine every this many steps
CHECKPOINT_VERSION = 1

Sampler = Callable[[np.random.Generator, np.ndarray], np.ndarray]


def _kernels():
    """The linear classifier's numba kernels (:mod:`simulate.kernels.linear`)."""
    try:
        from ..kernels import linear
    except ImportError as err:  # pragma: no cover - numba is an optional dependency
        raise ImportError("the Monte Carlo engine needs numba: pip install -e '.[mc]'") from err
    return linear


def _rng_kernels():
    """The shared random-number kernels (:mod:`simulate.kernels.rng`)."""
    _kernels()
    from ..kernels import rng
    return rng


# ---------------------------------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MCResult:
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

    def mean(self, q: str) -> np.ndarray:
        return replica_stats(self.values(q))["mean"]

    def std(self, q: str) -> np.ndarray:
        return replica_stats(self.values(q))["std"]

    def se(self, q: str) -> np.ndarray:
        return replica_stats(self.values(q))["se"]

    def __getitem__(self, q: str) -> dict[str, np.ndarray]:
        return {"mean": self.mean(q), "se": self.se(q), "std": self.std(q), "values": self.values(q)}

    def at(self, alpha: float) -> dict[str, float]:
        idx = np.flatnonzero(np.isclose(self.alpha, alpha, rtol=0, atol=0.5 / self.N))
        if idx.size == 0:
            raise KeyError(f"alpha = {alpha} is not on the output grid")
        i = int(idx[0])
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
# Engines (:class:`simulate.core.run.Engine`): each holds the state of every replica and advances it by n steps
# ---------------------------------------------------------------------------------------------------
def _record(R, b, E, S) -> dict[str, np.ndarray]:
    return dict(zip(QUANTITIES, (R, b, E, S)))


def _eps_chunk(params: Params, eps_keys: np.ndarray, t: int, n: int) -> tuple[np.ndarray, bool]:
    """Per-example budgets of steps t..t+n-1, shape (replicas, n), by inversion with eps_ppf."""
    if params.eps_law == "fixed" or params.eps == 0.0:
        return np.zeros((eps_keys.size, 1)), False
    u = _rng_kernels().stream_uniforms(eps_keys, np.uint64(t), n)
    return np.ascontiguousarray(eps_ppf(params.eps_law, params.eps, u), dtype=float), True


class _FullEngine(Engine):
    name = "full"

    def __init__(self, params, N, kernel_seqs, init_seqs, B, variances, eps_test):
        self.K = _kernels()
        self.p, self.N, self.eps_test = params, N, eps_test
        M = len(kernel_seqs)
        self.B = B
        keys = np.array([s.generate_state(3, np.uint64) for s in kernel_seqs], dtype=np.uint64)
        self.keys, self.ex_keys, self.eps_keys = (np.ascontiguousarray(keys[:, j]) for j in range(3))
        self.stride = np.uint64(1 << max(0, int(N - 1).bit_length()))
        self.U = np.stack([initial_w(params.R0, B, s) for s in init_seqs]) if M else np.empty((0, N))
        self.A = np.ones(M)
        self.bb = np.full(M, params.b0)
        self.ex_pos = np.zeros(M, np.uint64)
        if variances is None:
            self.iso, self.sd_iso, self.sd_diag, self.var = True, np.sqrt([params.v1, params.v2]), np.ones((2, 1)), None
        else:
            self.iso, self.sd_iso = False, np.ones(2)
            self.var = variances
            self.sd_diag = np.ascontiguousarray(np.sqrt(variances))
        self.mean = np.array([0.5 * params.rho, -0.5 * params.rho])
        nz = np.flatnonzero(B)
        self.jB = int(nz[0]) if nz.size == 1 and B[nz[0]] == 1.0 else -1  # B = e_jB: the fused fast path

    def state(self):
        return {"U": self.U, "A": self.A, "bb": self.bb, "ex_pos": self.ex_pos}

    def load(self, st):
        self.U, self.A, self.bb = (np.ascontiguousarray(st[k], dtype=float) for k in ("U", "A", "bb"))
        self.ex_pos = np.ascontiguousarray(st["ex_pos"], dtype=np.uint64)

    def advance(self, t, n):
        p = self.p
        eps_arr, use = _eps_chunk(p, self.eps_keys, t, n)
        K = self.K
        K.full_steps(K.FullState(self.U, self.A, self.bb, self.ex_pos), K.Streams(self.keys, self.ex_keys, self.stride),
                     K.Mixture(self.B, self.jB, self.mean, self.sd_iso, self.sd_diag, self.iso, float(p.prior)),
                     K.Training(float(p.eta_w), float(p.eta_b), float(p.eps), bool(p.non_robust_only),
                                LOSS_CODES[p.loss], float(p.erf_scale)),
                     t, n, eps_arr, use, RENORM_EVERY)

    def weights(self):
        return self.U * self.A[:, None]

    def observe(self):
        w = self.U * self.A[:, None]
        R = np.clip(w @ self.B, -1.0, 1.0)
        b = self.bb.copy()
        if self.var is None:
            return _record(R, b, test_error(R, b, self.p), adversarial_error(R, b, self.eps_test, self.p))
        q = (w * w) @ self.var.T  # (M, 2): variance of the field h given tau = +1, -1
        E = np.empty_like(R)
        S = np.empty_like(R)
        for r in range(R.size):
            pr = self.p.replace(v1=float(q[r, 0]), v2=float(q[r, 1]))
            E[r] = test_error(R[r], b[r], pr)
            S[r] = adversarial_error(R[r], b[r], self.eps_test, pr)
        return _record(R, b, E, S)


class _ReducedEngine(Engine):
    name = "reduced"

    def __init__(self, params, N, kernel_seqs, eps_test):
        self.K = _kernels()
        self.p, self.N, self.eps_test = params, N, eps_test
        keys = np.array([s.generate_state(3, np.uint64) for s in kernel_seqs], dtype=np.uint64)
        self.keys, self.eps_keys = np.ascontiguousarray(keys[:, 0]), np.ascontiguousarray(keys[:, 2])
        M = len(kernel_seqs)
        self.Rs = np.full(M, params.R0)
        self.bb = np.full(M, params.b0)
        self.pos = np.zeros(M, np.uint64)

    def state(self):
        return {"Rs": self.Rs, "bb": self.bb, "pos": self.pos}

    def load(self, st):
        self.Rs, self.bb = (np.ascontiguousarray(st[k], dtype=float) for k in ("Rs", "bb"))
        self.pos = np.ascontiguousarray(st["pos"], dtype=np.uint64)

    def advance(self, t, n):
        p = self.p
        eps_arr, use = _eps_chunk(p, self.eps_keys, t, n)
        self.K.reduced_steps(self.Rs, self.bb, self.keys, self.pos, n, self.N, p.rho, p.prior, p.v1, p.v2,
                             p.eta_w, p.eta_b, p.eps, eps_arr, use, p.non_robust_only, LOSS_CODES[p.loss],
                             p.erf_scale)

    def observe(self):
        R, b = self.Rs.copy(), self.bb.copy()
        return _record(R, b, test_error(R, b, self.p), adversarial_error(R, b, self.eps_test, self.p))


class _SamplerEngine(Engine):
    """Full engine on inputs from a user sampler; E and S estimated on held-out inputs.

    Steps are drawn in blocks of ``block`` steps; block j of replica r uses its own generator
    ``default_rng(SeedSequence(entropy, spawn_key=replica_key + (j,)))``, so the inputs of a step do not
    depend on how the run is cut into chunks (resuming is bit-identical) and no generator state is stored.
    """

    name = "full"

    def __init__(self, params, N, kernel_seqs, init_seqs, B, sampler, eps_test, test_seq, n_test):
        self.K = _kernels()
        self.p, self.N, self.eps_test, self.sampler, self.B = params, N, eps_test, sampler, B
        self.seqs = kernel_seqs
        self.block = max(1, min(256, (1 << 16) // N))
        self.W = np.stack([initial_w(params.R0, B, s) for s in init_seqs])
        self.bb = np.full(len(kernel_seqs), params.b0)
        trng = np.random.default_rng(test_seq)
        self.test_tau = np.where(trng.random(n_test) < params.prior, 1.0, -1.0)
        self.test_xi = self._draw(trng, self.test_tau)

    def _draw(self, rng, tau):
        xi = np.asarray(self.sampler(rng, tau), dtype=float)
        if xi.shape != (tau.size, self.N) or not np.all(np.isfinite(xi)):
            raise ParameterError(f"sampler must return finite inputs of shape ({tau.size}, {self.N}), "
                                 f"got shape {xi.shape}")
        return np.ascontiguousarray(xi)

    def _block(self, r: int, j: int):
        s = self.seqs[r]
        rng = np.random.default_rng(np.random.SeedSequence(s.entropy, spawn_key=tuple(s.spawn_key) + (j,)))
        p = self.p
        tau = np.where(rng.random(self.block) < p.prior, 1.0, -1.0)
        if p.eps_law == "fixed" or p.eps == 0.0:
            eps = np.full(self.block, p.eps)
        else:
            eps = np.asarray(eps_ppf(p.eps_law, p.eps, rng.random(self.block)), dtype=float)
        return tau, eps, self._draw(rng, tau)

    def state(self):
        return {"W": self.W, "bb": self.bb}

    def load(self, st):
        self.W, self.bb = np.ascontiguousarray(st["W"]), np.ascontiguousarray(st["bb"])

    def advance(self, t, n):
        p = self.p
        for j in range(t // self.block, (t + n - 1) // self.block + 1):
            lo = max(t, j * self.block) - j * self.block
            hi = min(t + n, (j + 1) * self.block) - j * self.block
            for r in range(self.W.shape[0]):
                tau, eps, xi = self._block(r, j)
                self.bb[r] = self.K.explicit_steps(self.W[r], float(self.bb[r]), xi[lo:hi], tau[lo:hi], eps[lo:hi],
                                                   p.eta_w, p.eta_b, p.non_robust_only, LOSS_CODES[p.loss],
                                                   p.erf_scale)

    def weights(self):
        return self.W.copy()

    def observe(self):
        R = np.clip(self.W @ self.B, -1.0, 1.0)
        b = self.bb.copy()
        margin = self.test_tau[None, :] * (self.W @ self.test_xi.T - b[:, None])  # (M, n_test)
        return _record(R, b, (margin <= 0).mean(axis=1), (margin - self.eps_test < 0).mean(axis=1))


# ---------------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------------
def initial_w(R0: float, B: np.ndarray, seq: np.random.SeedSequence) -> np.ndarray:
    """w(0) = R0 B + sqrt(1 - R0^2) e with e a uniformly random unit vector orthogonal to B."""
    g = np.random.default_rng(seq).standard_normal(B.size)
    g -= (g @ B) * B
    g /= np.linalg.norm(g)
    return R0 * B + math.sqrt(1.0 - R0 * R0) * g


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
        eng: Engine = _ReducedEngine(params, N, kernel_seqs, eps_test)
    elif sampler is not None:
        eng = _SamplerEngine(params, N, kernel_seqs, init_seqs, Bv, sampler, eps_test, root.spawn(1)[0], n_test)
    else:
        eng = _FullEngine(params, N, kernel_seqs, init_seqs, Bv, variances, eps_test)

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
