"""Baseline kernels for bench/mc.py: the straightforward numba loop with np.random.standard_normal per
element and an explicit renormalisation (not part of the package: only the benchmark uses them)."""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from simulate.kernels.special import dloss


# ---------------------------------------------------------------------------------------------------
# Baseline for bench/mc.py: the straightforward loop with np.random.standard_normal per element
# ---------------------------------------------------------------------------------------------------
@nb.njit(cache=True)
def seed_numba(seed):
    np.random.seed(seed)


@nb.njit(cache=True)
def baseline_numba_steps(w, b, n_steps, rho, prior, v1, v2, eta_w, eta_b, eps):
    """Straightforward numba SGD (B = e_1, quadratic loss, fixed eps), one normal per element per step
    from np.random.standard_normal and an explicit renormalisation; returns the new b."""
    N = w.size
    xi = np.empty(N)
    for _ in range(n_steps):
        tau = 1.0 if np.random.random() < prior else -1.0
        sd = math.sqrt(v1) if tau > 0 else math.sqrt(v2)
        for i in range(N):
            xi[i] = sd * np.random.standard_normal()
        xi[0] += tau * 0.5 * rho
        h = 0.0
        for i in range(N):
            h += w[i] * xi[i]
        x = h - tau * eps - b
        delta = dloss(x, tau, 0, 1.0)
        c = eta_w * delta / N
        s2 = 0.0
        for i in range(N):
            w[i] -= c * (xi[i] - tau * eps * w[i])
            s2 += w[i] * w[i]
        f = 1.0 / math.sqrt(s2)
        for i in range(N):
            w[i] *= f
        b += eta_b * delta / N
    return b


@nb.njit(cache=True, parallel=True)
def baseline_numba_parallel(W, bb, n_steps, rho, prior, v1, v2, eta_w, eta_b, eps):
    """The straightforward loop of :func:`baseline_numba_steps` over replicas in parallel (prange); numba
    gives every thread its own np.random state."""
    for r in nb.prange(W.shape[0]):
        bb[r] = baseline_numba_steps(W[r], bb[r], n_steps, rho, prior, v1, v2, eta_w, eta_b, eps)
