"""The linear classifier's Monte Carlo engines (:class:`simulate.core.run.Engine`): each holds the state of every
replica and advances it by n steps; :func:`simulate.linear.mc.run_mc` builds one and drives it.

- :class:`FullEngine`     the literal N-dimensional SGD (numba kernel :func:`simulate.kernels.linear.full_steps`),
  isotropic or with a diagonal covariance per cluster;
- :class:`ReducedEngine`  exact in law at finite N for isotropic clusters, O(1) per step
  (:func:`simulate.kernels.linear.reduced_steps`, docs/mc_reduced.md);
- :class:`SamplerEngine`  the full engine on inputs from a user sampler, E and S on held-out inputs.

Each records R, b, E, S (:data:`QUANTITIES`), E and S through :mod:`theory.linear.errors` where the covariance
is known.  Seeds and streams: the module docstring of :mod:`simulate.linear.mc`.
"""

from __future__ import annotations

import math

import numpy as np

from theory.linear.errors import adversarial_error, test_error
from theory.linear.params import ParameterError, Params, eps_ppf

from ..core.run import Engine

__all__ = ["QUANTITIES", "LOSS_CODES", "RENORM_EVERY", "FullEngine", "ReducedEngine", "SamplerEngine",
           "initial_w", "eps_chunk", "record", "kernels", "rng_kernels"]

QUANTITIES = ("R", "b", "E", "S")
LOSS_CODES = {"quadratic": 0, "cross_entropy": 1}
RENORM_EVERY = 128  # exact renormalisation of w in the full engine every this many steps


def kernels():
    """The linear classifier's numba kernels (:mod:`simulate.kernels.linear`)."""
    try:
        from ..kernels import linear
    except ImportError as err:  # pragma: no cover - numba is an optional dependency
        raise ImportError("the Monte Carlo engine needs numba: pip install -e '.[mc]'") from err
    return linear


def rng_kernels():
    """The shared random-number kernels (:mod:`simulate.kernels.rng`)."""
    kernels()
    from ..kernels import rng
    return rng


def record(R, b, E, S) -> dict[str, np.ndarray]:
    return dict(zip(QUANTITIES, (R, b, E, S)))


def eps_chunk(params: Params, eps_keys: np.ndarray, t: int, n: int) -> tuple[np.ndarray, bool]:
    """Per-example budgets of steps t..t+n-1, shape (replicas, n), by inversion with eps_ppf."""
    if params.eps_law == "fixed" or params.eps == 0.0:
        return np.zeros((eps_keys.size, 1)), False
    u = rng_kernels().stream_uniforms(eps_keys, np.uint64(t), n)
    return np.ascontiguousarray(eps_ppf(params.eps_law, params.eps, u), dtype=float), True


class FullEngine(Engine):
    name = "full"
    state_arrays = {"U": float, "A": float, "bb": float, "ex_pos": np.uint64}

    def __init__(self, params, N, kernel_seqs, init_seqs, B, variances, eps_test):
        self.K = kernels()
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

    def advance(self, t, n):
        p = self.p
        eps_arr, use = eps_chunk(p, self.eps_keys, t, n)
        K = self.K
        K.full_steps(K.Replicas(self.U, self.A, self.bb, self.ex_pos), K.Streams(self.keys, self.ex_keys, self.stride),
                     K.ClusterData(self.B, self.jB, self.mean, self.sd_iso, self.sd_diag, self.iso, float(p.prior)),
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
            return record(R, b, test_error(R, b, self.p), adversarial_error(R, b, self.eps_test, self.p))
        q = (w * w) @ self.var.T  # (M, 2): variance of the field h given tau = +1, -1
        E = np.empty_like(R)
        S = np.empty_like(R)
        for r in range(R.size):
            pr = self.p.replace(v1=float(q[r, 0]), v2=float(q[r, 1]))
            E[r] = test_error(R[r], b[r], pr)
            S[r] = adversarial_error(R[r], b[r], self.eps_test, pr)
        return record(R, b, E, S)


class ReducedEngine(Engine):
    name = "reduced"
    state_arrays = {"Rs": float, "bb": float, "pos": np.uint64}

    def __init__(self, params, N, kernel_seqs, eps_test):
        self.K = kernels()
        self.p, self.N, self.eps_test = params, N, eps_test
        keys = np.array([s.generate_state(3, np.uint64) for s in kernel_seqs], dtype=np.uint64)
        self.keys, self.eps_keys = np.ascontiguousarray(keys[:, 0]), np.ascontiguousarray(keys[:, 2])
        M = len(kernel_seqs)
        self.Rs = np.full(M, params.R0)
        self.bb = np.full(M, params.b0)
        self.pos = np.zeros(M, np.uint64)

    def advance(self, t, n):
        p = self.p
        eps_arr, use = eps_chunk(p, self.eps_keys, t, n)
        self.K.reduced_steps(self.Rs, self.bb, self.keys, self.pos, n, self.N, p.rho, p.prior, p.v1, p.v2,
                             p.eta_w, p.eta_b, p.eps, eps_arr, use, p.non_robust_only, LOSS_CODES[p.loss],
                             p.erf_scale)

    def observe(self):
        R, b = self.Rs.copy(), self.bb.copy()
        return record(R, b, test_error(R, b, self.p), adversarial_error(R, b, self.eps_test, self.p))


class SamplerEngine(Engine):
    """Full engine on inputs from a user sampler; E and S estimated on held-out inputs.

    Steps are drawn in blocks of ``block`` steps; block j of replica r uses its own generator
    ``default_rng(SeedSequence(entropy, spawn_key=replica_key + (j,)))``, so the inputs of a step do not
    depend on how the run is cut into chunks (resuming is bit-identical) and no generator state is stored.
    """

    name = "full"
    state_arrays = {"W": None, "bb": None}

    def __init__(self, params, N, kernel_seqs, init_seqs, B, sampler, eps_test, test_seq, n_test):
        self.K = kernels()
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
        return record(R, b, (margin <= 0).mean(axis=1), (margin - self.eps_test < 0).mean(axis=1))


def initial_w(R0: float, B: np.ndarray, seq: np.random.SeedSequence) -> np.ndarray:
    """w(0) = R0 B + sqrt(1 - R0^2) e with e a uniformly random unit vector orthogonal to B."""
    g = np.random.default_rng(seq).standard_normal(B.size)
    g -= (g @ B) * B
    g /= np.linalg.norm(g)
    return R0 * B + math.sqrt(1.0 - R0 * R0) * g
