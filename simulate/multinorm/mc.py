"""Monte Carlo of the multinorm family: replicas of the N-dimensional online SGD with the exact attacks.

    run_multinorm_mc(MultinormParams(scheme="max"), d=1000, replicas=32, alphas=[0, 10, 50], seed=0)

The model, the attacks and the seven schemes are those of :mod:`theory.multinorm.params`; one step is
:func:`simulate.kernels.multinorm.multinorm_steps` (numba, replicas in parallel).  N = d + 1, alpha = steps/N
(steps = round(alpha N), the recorded alpha is steps/N).  Initial state: w_0 = params.w0, the weak weights
w_i = sqrt(1 - w0^2) g_i/|g| with g ~ N(0, I_d) (u_i = sqrt(d) w_i i.i.d. Gaussian of variance ~ 1 - w0^2,
Q = 1 - w0^2 exactly), b = 0.

Recorded on the alpha grid for every replica: the order parameters w0, b, ubar = (1/d) sum u_i,
L1 = (1/d) sum |u_i|, Q = sum_i w_i^2, wmax = max_i |w_i|, and the errors E, S_inf, S_1, union computed from
them through :func:`theory.multinorm.errors.errors` (exact given (w, b)).  Optionally the law of the u_i,
pooled over replicas, as a histogram on given bin edges (``u_bins``).

The run loop, the checkpoints (bit-identical resume), the progress bar and the execution settings are those
of every Monte Carlo engine of the project (:func:`simulate.mc.drive`, :class:`simulate.mc.Execution`);
replica statistics by :func:`simulate.mc.replica_stats`.  Seeds: ``SeedSequence(seed).spawn(replicas)``,
each child spawning (kernel, init); the kernel's two stream keys are drawn from the kernel child.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from theory.multinorm import MultinormParams, ParameterError, check_d, errors, state_from_weights
from theory.multinorm.errors import ERROR_KEYS

from ..core.run import (MEMORY_MAX, REPLICAS_MAX, SEED_MAX, STEPS_MAX, Engine, Execution, ReplicaResult,  # noqa: F401
                        alpha_steps, check_int, drive, execution_from, replica_stats, run_signature)

__all__ = ["QUANTITIES", "ORDER_PARAMETERS", "MultinormMCResult", "run_multinorm_mc", "initial_weights",
           "validate_multinorm_run", "RENORM_EVERY"]

ORDER_PARAMETERS = ("w0", "b", "ubar", "L1", "Q", "wmax")
QUANTITIES = ORDER_PARAMETERS + ERROR_KEYS
LOSS_CODES = {"quadratic": 0, "cross_entropy": 1}
RENORM_EVERY = 256  # fold the lazy scale into u (|u| = 1 exactly) every this many steps
CHECKPOINT_VERSION = 1
D_MIN = 2
D_MAX = 1 << 24  # 16 Mi weak features: one replica's w is then 128 MiB


def _kernels():
    try:
        from ..kernels import multinorm
    except ImportError as err:  # pragma: no cover - numba is an optional dependency
        raise ImportError("the Monte Carlo engine needs numba: pip install -e '.[mc]'") from err
    return multinorm


def initial_weights(params: MultinormParams, d: int, seq: np.random.SeedSequence) -> np.ndarray:
    """w(0): w_0 = params.w0 and the weak weights sqrt(1 - w0^2) g/|g|, g ~ N(0, I_d) from ``seq``."""
    g = np.random.default_rng(seq).standard_normal(d)
    return np.concatenate([[params.w0], math.sqrt(1.0 - params.w0 ** 2) * g / np.linalg.norm(g)])


@dataclass(frozen=True)
class MultinormMCResult(ReplicaResult):
    """Replica values of every recorded quantity, ``data[q]`` of shape (len(alpha), replicas);
    ``mean(q)``, ``se(q)``, ``std(q)`` over replicas; ``u_hist`` (len(alpha), bins) the pooled density of
    the u_i on ``u_bins`` when asked for."""

    params: MultinormParams
    d: int
    replicas: int
    seed: int
    alpha: np.ndarray
    steps: np.ndarray
    data: dict[str, np.ndarray]
    u_bins: np.ndarray | None = None
    u_hist: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def N(self) -> int:
        return self.d + 1


    def summary(self) -> dict[str, Any]:
        """The command's JSON body: alphas and, per quantity, the replica mean and its standard error."""
        out: dict[str, Any] = {"alphas": self.alpha.tolist()}
        for q in QUANTITIES:
            out[q] = self.mean(q).tolist()
            out[q + "_se"] = self.se(q).tolist()
        acc = {"acc_clean": "E", "acc_inf": "S_inf", "acc_1": "S_1", "acc_union": "union"}
        for k, q in acc.items():
            out[k] = (1.0 - self.mean(q)).tolist()
            out[k + "_se"] = self.se(q).tolist()
        return out


class _MultinormEngine(Engine):
    """Every replica's direction u (M, N) with lazy scale A, threshold b and sequential-stream position."""

    name = "multinorm"
    state_arrays = {"U": float, "A": float, "bb": float, "ex_pos": np.uint64}

    def __init__(self, params: MultinormParams, d: int, kernel_seqs, init_seqs, u_bins):
        self.K = _kernels()
        self.p, self.d = params, d
        M = len(kernel_seqs)
        keys = np.array([s.generate_state(2, np.uint64) for s in kernel_seqs], dtype=np.uint64).reshape(M, 2)
        self.keys, self.ex_keys = np.ascontiguousarray(keys[:, 0]), np.ascontiguousarray(keys[:, 1])
        self.stride = np.uint64(1 << max(0, int(d - 1).bit_length()))
        self.U = np.stack([initial_weights(params, d, s) for s in init_seqs])
        self.A = np.ones(M)
        self.bb = np.zeros(M)
        self.ex_pos = np.zeros(M, np.uint64)
        self.u_bins = u_bins
        self.hist: list[np.ndarray] = []

    def advance(self, t, n):
        p = self.p
        self.K.multinorm_steps(self.U, self.A, self.bb, self.ex_pos, self.keys, self.ex_keys, self.stride,
                               t, n, self.K.SCHEME_CODES[p.scheme], p.a, p.p0, p.e, p.eps1, p.eps2, p.eta_w,
                               p.eta_b, LOSS_CODES[p.loss], RENORM_EVERY)

    def weights(self) -> np.ndarray:
        return self.U * self.A[:, None]

    def observe(self):
        w = self.weights()
        st = state_from_weights(w, self.bb.copy())
        out = {"w0": st.w0, "b": st.b, "ubar": st.ubar, "L1": st.L1, "Q": st.Q, "wmax": st.wmax}
        out.update(errors(st, self.p, self.d))
        if self.u_bins is not None:
            h, _ = np.histogram(w[:, 1:].ravel() * math.sqrt(self.d), bins=self.u_bins, density=True)
            self.hist.append(h)
        return out


def validate_multinorm_run(params: MultinormParams, d, replicas, alphas, seed):
    """(d, M, seed, steps, alpha) of a valid run, or ParameterError naming the setting and its range."""
    if not isinstance(params, MultinormParams):
        raise ParameterError(f"params must be a theory.multinorm.MultinormParams, got {type(params).__name__}")
    d = check_d(d, allow_inf=False)
    if not D_MIN <= d <= D_MAX:
        raise ParameterError(f"d must be an integer in [{D_MIN}, {D_MAX}] for the Monte Carlo (memory: one "
                             f"replica holds d + 1 doubles), got {d}")
    M = check_int("replicas", replicas, 1, REPLICAS_MAX)
    seed = check_int("seed", seed, 0, SEED_MAX, " (an unsigned 64-bit integer)")
    N = d + 1
    steps, alpha = alpha_steps(alphas, N)
    if steps[-1] > STEPS_MAX:
        raise ParameterError(f"alpha_max must be at most 2^53/N = {STEPS_MAX / N:.4g}, got {alpha[-1]:g}")
    need = M * (N * 8 + 64) + 8 * len(QUANTITIES) * M * steps.size
    if need > MEMORY_MAX:
        raise ParameterError(f"replicas x N = {M} x {N} with {steps.size} recorded alphas needs "
                             f"{need / 2**30:.3g} GiB, more than the {MEMORY_MAX / 2**30:g} GiB allowed; "
                             "lower --replicas, --d or the grid")
    return d, M, seed, steps, alpha


def run_multinorm_mc(params: MultinormParams, d: int, replicas: int, alphas, seed: int = 0, *, u_bins=None,
                     execution: Execution | None = None, **execution_settings) -> MultinormMCResult:
    """Simulate ``replicas`` independent SGD runs with d weak features and record :data:`QUANTITIES` on
    ``alphas`` (module docstring).  Execution (threads, progress, checkpoint, stopping early) as in
    :func:`simulate.mc.run_mc`; a stopped run raises :class:`simulate.mc.Unfinished` and resumes
    bit-identically.  ``u_bins`` (increasing edges) records the pooled density of u = sqrt(d) w_i at every
    alpha (not with a checkpoint: the densities are not part of it)."""
    ex = execution_from(execution, execution_settings, "run_multinorm_mc")
    d, M, seed, steps, alpha = validate_multinorm_run(params, d, replicas, alphas, seed)
    if u_bins is not None:
        u_bins = np.asarray(u_bins, dtype=float).ravel()
        if u_bins.size < 2 or not np.all(np.isfinite(u_bins)) or np.any(np.diff(u_bins) <= 0):
            raise ParameterError("u_bins must be at least two finite, increasing bin edges")
        if ex.checkpoint is not None:
            raise ParameterError("u_bins needs a run without checkpoint (the densities are not checkpointed)")
    root = np.random.SeedSequence(seed)
    kernel_seqs, init_seqs = zip(*(child.spawn(2) for child in root.spawn(M)))
    eng = _MultinormEngine(params, d, kernel_seqs, init_seqs, u_bins)
    sig = run_signature(family="multinorm", params=params.as_dict(), d=d, M=M, seed=seed, steps=steps.tolist(),
                     version=CHECKPOINT_VERSION)
    # chunks between progress updates: about 2^22 coordinate updates per replica
    chunk = max(1, (1 << 22) // (d + 1))
    rec, wall = drive(eng, steps, M, sig, QUANTITIES, ex, chunk=chunk,
                      desc=f"MC multinorm {params.scheme} d={d} x{M}")
    info = {"wall_s": wall, "renorm_every": RENORM_EVERY, "errors": "theory.multinorm.errors (exact given w, b)",
            "rng": "SplitMix64 streams + 256-layer ziggurat (simulate.kernels.rng)",
            "seeding": "numpy.random.SeedSequence(seed).spawn(replicas); per child spawn(2) = (kernel, init); "
                       "kernel keys = kernel.generate_state(2, uint64)"}
    return MultinormMCResult(params, d, M, seed, alpha, steps, rec, u_bins,
                             np.array(eng.hist) if u_bins is not None else None, info)
