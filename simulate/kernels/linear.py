"""Monte Carlo kernels (numba) of the linear classifier erf((w.xi - b)/s), |w| = 1: the full N-dimensional
engine, explicit updates on supplied inputs, and the reduced O(1)-per-step engine (docs/mc_reduced.md).

Random numbers come from :mod:`simulate.kernels.rng`, the loss derivative from :mod:`simulate.kernels.special`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba as nb
import numpy as np

from .rng import (FASTMATH, GAMMA, ZIG_RATIO, ZIG_XW, bits_pass, chi2_seq, fix_rejected, gamma_mt, mix64,
                  normal_seq, u01, window_scratch, word, zig_finish)
from .special import dloss

__all__ = ["full_steps", "Replicas", "Streams", "ClusterData", "Training", "explicit_steps", "reduced_steps",
           "REDUCED_LANES"]


# ---------------------------------------------------------------------------------------------------
# Full engine: N-dimensional SGD, w = a * u stored with a lazy scale a
# ---------------------------------------------------------------------------------------------------
class Replicas(NamedTuple):
    """State of every replica of the full engine; the kernel updates these arrays in place.

    U       (M, N) float64  direction of w, stored with a lazy scale: w_r = A[r] U[r], |w_r| = 1
    A       (M,) float64    the lazy scale of each replica
    b       (M,) float64    threshold
    ex_pos  (M,) uint64     position in each replica's sequential stream (labels, rejected normals)
    """

    U: np.ndarray
    A: np.ndarray
    b: np.ndarray
    ex_pos: np.ndarray


class Streams(NamedTuple):
    """Random streams of the replicas (:mod:`simulate.kernels.rng`).

    noise    (M,) uint64  key of the counter-based stream of the input noise: step t, coordinate i is word
                          t * stride + i
    extra    (M,) uint64  key of the sequential stream (labels, rejected ziggurat draws), read at ex_pos
    stride   uint64       words reserved per step in the noise stream (a power of two >= N)
    """

    noise: np.ndarray
    extra: np.ndarray
    stride: np.uint64


class ClusterData(NamedTuple):
    """The data: xi = mean[c] B + sd_c z, c = 0 for tau = +1 and 1 for tau = -1.

    B        (N,) float64    unit vector joining the centres
    jB       int             j when B = e_j (the fused fast path), else -1
    mean     (2,) float64    +rho/2, -rho/2
    sd_iso   (2,) float64    sqrt(v1), sqrt(v2) for isotropic clusters
    sd_diag  (2, N) float64  per-coordinate standard deviations otherwise (shape (2, 1) when unused)
    iso      bool            isotropic clusters
    prior    float           P(tau = +1)
    """

    B: np.ndarray
    jB: int
    mean: np.ndarray
    sd_iso: np.ndarray
    sd_diag: np.ndarray
    iso: bool
    prior: float


# numba's on-disk cache index pickles the argument types of a cached kernel by name: an index written before
# Replicas and ClusterData had these names must still load (numba then finds it stale and recompiles), so the
# former names stay as aliases, outside __all__.
FullState, Mixture = Replicas, ClusterData


class Training(NamedTuple):
    """The SGD: learning rates, the fixed budget (when no per-example budgets are given), the update rule."""

    eta_w: float
    eta_b: float
    eps: float
    non_robust_only: bool
    loss: int         # simulate.linear.engines.LOSS_CODES: 0 quadratic, 1 cross-entropy
    erf_scale: float


@nb.njit(cache=True)
def full_steps(state, streams, data, train, t0, n_steps, eps_arr, use_eps_arr, renorm_every):
    """Advance every replica r by ``n_steps`` SGD steps t = t0, ..., t0 + n_steps - 1.

    ``state`` (:class:`Replicas`, updated in place), ``streams`` (:class:`Streams`), ``data``
    (:class:`ClusterData`), ``train`` (:class:`Training`); ``eps_arr[r, t - t0]`` are per-example budgets when
    ``use_eps_arr``, else every budget is ``train.eps``; u is renormalised every ``renorm_every`` steps.

    Step t of replica r: label tau = +1 iff u < prior (u from the sequential stream), noise z_i = normal
    from word t*stride + i of the noise stream; xi_i = mean[c] B_i + sd_c,i z_i (c = 0 for tau = +1, 1 for
    -1; sd_c,i = sd_iso[c] if iso else sd_diag[c, i]); budget e; then

        x = w.xi - tau e - b,  delta = dL/dx,  c = eta_w delta / N,  g = 1 + c tau e,
        w~ = g w - c xi,  |w~|^2 = g^2 - 2 g c (w.xi) + c^2 |xi|^2,  w <- w~/|w~|,  b <- b + eta_b delta/N

    (skipped when non_robust_only and tau x >= 0).  With w = a u: u <- u - c/(a g) xi and
    a <- a g/|w~|, one pass over u.  Every ``renorm_every`` steps u is rescaled to |u| = 1 exactly (a = 1),
    which removes the rounding drift of the closed-form norm.

    Fast path (isotropic clusters and B = e_jB, jB >= 0): xi = m e_jB + sd z is never stored; the fast
    ziggurat values, u.z and |z|^2 come from one fused pass, corrected afterwards for the rare rejected
    draws, and the update is u += (k sd) z plus one coordinate.
    """
    U, A, bb, ex_pos = state
    keys, ex_keys, stride = streams
    Bv, jB, mean, sd_iso, sd_diag, iso, prior = data
    eta_w, eta_b, eps_fixed, non_robust_only, loss, erf_scale = train
    _full_steps(U, A, bb, keys, ex_keys, ex_pos, t0, n_steps, stride, Bv, jB, mean, sd_iso, sd_diag, iso,
                prior, eta_w, eta_b, eps_fixed, eps_arr, use_eps_arr, non_robust_only, loss, erf_scale,
                renorm_every)


# The parallel loop itself takes the fields one by one: element writes (A[r] = a) to arrays unpacked from
# a tuple inside a prange kernel were lost (numba 0.68.1), so the tuples are unpacked above, outside the loop.
@nb.njit(cache=True, parallel=True, fastmath=FASTMATH)
def _full_steps(U, A, bb, keys, ex_keys, ex_pos, t0, n_steps, stride, Bv, jB, mean, sd_iso, sd_diag, iso,
                prior, eta_w, eta_b, eps_fixed, eps_arr, use_eps_arr, non_robust_only, loss, erf_scale,
                renorm_every):
    """The loop of :func:`full_steps` over replicas, one thread per replica (the fields of its tuples)."""
    M, N = U.shape
    coord = iso and jB >= 0
    for r in nb.prange(M):
        z, mant, sgn, jj, rej = window_scratch(N)
        fm = mant.view(np.float64)
        fs = sgn.view(np.float64)
        u = U[r]
        a = A[r]
        b = bb[r]
        key = keys[r]
        ek = ex_keys[r]
        ep = ex_pos[r]
        for k in range(n_steps):
            t = t0 + k
            tau = 1.0 if u01(word(ek, ep)) < prior else -1.0
            ep += np.uint64(1)
            ci = 0 if tau > 0 else 1
            e = eps_arr[r, k] if use_eps_arr else eps_fixed
            m = mean[ci]
            base = key + np.uint64(t) * stride * GAMMA
            bits_pass(mant, sgn, jj, base)
            if coord:
                sd = sd_iso[ci]
                uz = 0.0
                zz = 0.0
                nrej = 0
                for i in range(N):
                    v = fm[i] - 1.0
                    j = jj[i]
                    x = v * ZIG_XW[j] * fs[i]
                    z[i] = x
                    uz += u[i] * x
                    zz += x * x
                    if v >= ZIG_RATIO[j]:  # rejected by the fast path (about 1.5 %): remember it
                        rej[nrej] = i
                        nrej += 1
                for q in range(nrej):  # finish the rejected draws and correct the sums
                    i = rej[q]
                    old = z[i]
                    z[i], ep = zig_finish(mix64(base + np.uint64(i) * GAMMA), ek, ep)
                    uz += u[i] * (z[i] - old)
                    zz += z[i] * z[i] - old * old
                hw = m * u[jB] + sd * uz
                xx = m * m + 2.0 * m * sd * z[jB] + sd * sd * zz
            else:
                for i in range(N):
                    z[i] = (fm[i] - 1.0) * ZIG_XW[jj[i]] * fs[i]
                ep = fix_rejected(z, mant, jj, base, ek, ep)
                hw = 0.0
                xx = 0.0
                for i in range(N):
                    xi = m * Bv[i] + (sd_iso[ci] if iso else sd_diag[ci, i]) * z[i]
                    z[i] = xi
                    hw += u[i] * xi
                    xx += xi * xi
            h = a * hw
            x = h - tau * e - b
            if not (non_robust_only and tau * x >= 0.0):
                delta = dloss(x, tau, loss, erf_scale)
                c = eta_w * delta / N
                g = 1.0 + c * tau * e
                nw = math.sqrt(g * g - 2.0 * g * c * h + c * c * xx)
                if abs(g) > 0.5:
                    kk = -c / (a * g)
                    a = a * g / nw
                else:  # never met for c ~ 1/N; fold the scale into u for safety
                    for i in range(N):
                        u[i] *= a * g
                    kk = -c
                    a = 1.0 / nw
                if coord:
                    ks = kk * sd_iso[ci]
                    for i in range(N):
                        u[i] += ks * z[i]
                    u[jB] += kk * m
                else:
                    for i in range(N):
                        u[i] += kk * z[i]
                b += eta_b * delta / N
            if (t + 1) % renorm_every == 0:
                s2 = 0.0
                for i in range(N):
                    s2 += u[i] * u[i]
                f = 1.0 / math.sqrt(s2)
                for i in range(N):
                    u[i] *= f
                a = 1.0
        A[r] = a
        bb[r] = b
        ex_pos[r] = ep


# ---------------------------------------------------------------------------------------------------
# Explicit updates on supplied inputs (user-supplied samplers): w normalised explicitly every step
# ---------------------------------------------------------------------------------------------------
@nb.njit(cache=True, fastmath=FASTMATH)
def explicit_steps(w, b, xis, taus, epss, eta_w, eta_b, non_robust_only, loss, erf_scale):
    """Apply the SGD steps for the inputs xis[k] (labels taus[k], budgets epss[k]) to w (in place);
    returns the new b."""
    n_steps, N = xis.shape
    for k in range(n_steps):
        tau = taus[k]
        e = epss[k]
        h = 0.0
        for i in range(N):
            h += w[i] * xis[k, i]
        x = h - tau * e - b
        if non_robust_only and tau * x >= 0.0:
            continue
        delta = dloss(x, tau, loss, erf_scale)
        c = eta_w * delta / N
        s2 = 0.0
        for i in range(N):
            w[i] = w[i] - c * (xis[k, i] - tau * e * w[i])
            s2 += w[i] * w[i]
        f = 1.0 / math.sqrt(s2)
        for i in range(N):
            w[i] *= f
        b += eta_b * delta / N
    return b


# ---------------------------------------------------------------------------------------------------
# Reduced engine: O(1) per step, exact in distribution for isotropic clusters (docs/mc_reduced.md)
# ---------------------------------------------------------------------------------------------------
@nb.njit(inline="always")
def _reduced_draw(key, p, prior, big, d_mt, c_mt, N):
    """The random numbers of one reduced step: (tau, z1, z2, C ~ chi2_{N-2}, new position)."""
    tau = 1.0 if u01(word(key, p)) < prior else -1.0
    p += np.uint64(1)
    z1, p = normal_seq(key, p)
    z2, p = normal_seq(key, p)
    if big:
        C, p = gamma_mt(d_mt, c_mt, key, p)
        C *= 2.0
    else:
        C, p = chi2_seq(N - 2, key, p)
    return tau, z1, z2, C, p


@nb.njit(inline="always")
def _reduced_update(R, b, tau, z1, z2, C, e, N, rho, v1, v2, sv1, sv2, eta_w, eta_b, non_robust_only, loss,
                    erf_scale):
    """One reduced step from its random numbers: the new (R, b)."""
    if tau > 0:
        sv = sv1
        v = v1
    else:
        sv = sv2
        v = v2
    hB = tau * 0.5 * rho + sv * z1
    h = R * hB + math.sqrt(max(1.0 - R * R, 0.0)) * sv * z2
    x = h - tau * e - b
    if non_robust_only and tau * x >= 0.0:
        return R, b
    delta = dloss(x, tau, loss, erf_scale)
    c = eta_w * delta / N
    g = 1.0 + c * tau * e
    xx = hB * hB + v * (z2 * z2 + C)
    R = (g * R - c * hB) / math.sqrt(g * g - 2.0 * g * c * h + c * c * xx)
    return min(1.0, max(-1.0, R)), b + eta_b * delta / N


#: replicas advanced in lockstep by one thread of the reduced engine: a step is a long chain of dependent
#: operations (erf, exp, sqrt, division), and interleaving independent replicas lets the CPU overlap them
REDUCED_LANES = 8


@nb.njit(cache=True, parallel=True)
def reduced_steps(Rs, bb, keys, pos, n_steps, N, rho, prior, v1, v2, eta_w, eta_b, eps_fixed, eps_arr,
                  use_eps_arr, non_robust_only, loss, erf_scale):
    """Advance (R, b) of every replica by ``n_steps`` steps of the N-dimensional SGD, in distribution.

    Given (R, b) and the label tau, with z1, z2 ~ N(0, 1) and C ~ chi2_{N-2} independent:
        h_B = tau rho/2 + sqrt(v) z1,  h = tau rho R/2 + sqrt(v) (R z1 + sqrt(1 - R^2) z2),
        |xi|^2 = h_B^2 + v z2^2 + v C,   x = h - tau e - b,   c = eta_w delta/N,   g = 1 + c tau e,
        R <- (g R - c h_B) / sqrt(g^2 - 2 g c h + c^2 |xi|^2),   b <- b + eta_b delta/N.
    Each replica has its own sequential stream (keys[r], pos[r]); groups of REDUCED_LANES replicas are
    interleaved step by step (the result of a replica does not depend on the grouping).
    """
    M = Rs.size
    sv1 = math.sqrt(v1)
    sv2 = math.sqrt(v2)
    big = N - 2 >= 2  # chi2_{N-2} = 2 Gamma((N-2)/2): the Marsaglia-Tsang constants once
    d_mt = 0.5 * (N - 2) - 1.0 / 3.0
    c_mt = 1.0 / math.sqrt(9.0 * d_mt) if big else 0.0
    L = REDUCED_LANES
    for grp in nb.prange((M + L - 1) // L):
        r0 = grp * L
        nl = min(L, M - r0)
        R = Rs[r0:r0 + nl].copy()
        b = bb[r0:r0 + nl].copy()
        p = pos[r0:r0 + nl].copy()
        tau = np.empty(nl)
        z1 = np.empty(nl)
        z2 = np.empty(nl)
        C = np.empty(nl)
        for k in range(n_steps):
            for l in range(nl):  # random numbers first: independent of the state, they pipeline well
                tau[l], z1[l], z2[l], C[l], p[l] = _reduced_draw(keys[r0 + l], p[l], prior, big, d_mt, c_mt, N)
            for l in range(nl):  # then the lanes' dependent chains, which the processor overlaps
                e = eps_arr[r0 + l, k] if use_eps_arr else eps_fixed
                R[l], b[l] = _reduced_update(R[l], b[l], tau[l], z1[l], z2[l], C[l], e, N, rho, v1, v2, sv1, sv2,
                                             eta_w, eta_b, non_robust_only, loss, erf_scale)
        Rs[r0:r0 + nl] = R
        bb[r0:r0 + nl] = b
        pos[r0:r0 + nl] = p

