"""Monte Carlo kernels (numba) of the soft committee machine sigma = sum_k v_k erf(w_k.xi - b_k), |w_k| = 1, under
PGD-l2 adversarial training: the literal N-dimensional SGD, with the attack computed from the input gradient
in N dimensions (no use of the fact that it lies in span{w_k}), and the test-set errors E and S.

Random numbers: the streams of :mod:`simulate.kernels.rng`, used as the linear engine uses them.  Step t of
replica r: the cluster from one word of the sequential stream (ex_keys[r], ex_pos[r]); the noise z_i from
word t*stride + i of the counter stream keys[r] (ziggurat fast path, rejected draws finished from the
sequential stream).  Test example j of observation o: the counter stream test_keys[r] at (o*n_test + j)*stride,
and a sequential stream test_ex_keys[r] from position (o*n_test + j)*2^20 (cluster, rejected draws).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from .rng import FASTMATH, GAMMA, ZIG_XW, bits_pass, fix_rejected, u01, word

__all__ = ["committee_steps", "committee_errors"]

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


@nb.njit(inline="always")
def _draw_input(xi, z, mant, sgn, jj, key, pos_counter, stride, ek, ep, Bm, means, sds, cum):
    """One input xi = sum_d m_cd B_d + sqrt(v_c) z of a cluster c drawn with the cumulative priors; returns
    (c, new ep)."""
    u = u01(word(ek, ep))
    ep += np.uint64(1)
    C = cum.size
    c = 0
    while c < C - 1 and u >= cum[c]:
        c += 1
    base = key + pos_counter * stride * GAMMA
    bits_pass(mant, sgn, jj, base)
    fm = mant.view(np.float64)
    fs = sgn.view(np.float64)
    N = xi.size
    for i in range(N):
        z[i] = (fm[i] - 1.0) * ZIG_XW[jj[i]] * fs[i]
    ep = fix_rejected(z, mant, jj, base, ek, ep)
    sd = sds[c]
    for i in range(N):
        xi[i] = sd * z[i]
    for d in range(Bm.shape[0]):
        m = means[c, d]
        if m != 0.0:
            for i in range(N):
                xi[i] += m * Bm[d, i]
    return c, ep


@nb.njit(inline="always")
def _scratch(N, K):
    """Per-replica work arrays: z, xi, dl, x, g (N), the ziggurat's mant, sgn, jj (N) and the fields lam (K)."""
    return (np.empty(N), np.empty(N), np.empty(N), np.empty(N), np.empty(N), np.empty(N, np.uint64),
            np.empty(N, np.uint64), np.empty(N, np.int64), np.empty(K))


@nb.njit(inline="always")
def _fields(Wr, b, x, lam):
    K, N = Wr.shape
    for k in range(K):
        s = 0.0
        for i in range(N):
            s += Wr[k, i] * x[i]
        lam[k] = s - b[k]


@nb.njit(inline="always")
def _output(v, lam):
    """sigma = sum_k v_k erf(lambda_k)."""
    sig = 0.0
    for k in range(lam.size):
        sig += v[k] * math.erf(lam[k])
    return sig


@nb.njit(inline="always")
def _pgd(Wr, b, v, xi, tau, eps, steps, step, dl, x, g, lam):
    """PGD-l2 in input space: dl <- Proj_{|dl| <= eps}(dl + step eps grad/|grad|), grad = dL/dxi at xi + dl, with
    L = (sigma - tau)^2/2 and the gradient (sigma - tau) sum_k v_k erf'(lambda_k) w_k formed in N dimensions."""
    K, N = Wr.shape
    for i in range(N):
        dl[i] = 0.0
    for _ in range(steps):
        for i in range(N):
            x[i] = xi[i] + dl[i]
        _fields(Wr, b, x, lam)
        sig = _output(v, lam)
        for i in range(N):
            g[i] = 0.0
        for k in range(K):
            gk = (sig - tau) * v[k] * _TWO_OVER_SQRT_PI * math.exp(-lam[k] * lam[k])
            for i in range(N):
                g[i] += gk * Wr[k, i]
        gn = 0.0
        for i in range(N):
            gn += g[i] * g[i]
        if gn > 0.0:
            f = step * eps / math.sqrt(gn)
            dn = 0.0
            for i in range(N):
                dl[i] += f * g[i]
                dn += dl[i] * dl[i]
            if dn > eps * eps:
                f = eps / math.sqrt(dn)
                for i in range(N):
                    dl[i] *= f


@nb.njit(cache=True, parallel=True, fastmath=FASTMATH)
def committee_steps(W, bb, vv, keys, ex_keys, ex_pos, t0, n_steps, stride, Bm, means, sds, labels, cum,
                    eta_w, eta_b, eta_v, eps, pgd_steps, pgd_step):
    """Advance every replica r by ``n_steps`` online steps t = t0, ..., t0 + n_steps - 1 (in place).

    State of replica r: W[r] (K, N) with unit rows, bb[r] (K), vv[r] (K).  One step: draw (c, xi); if eps > 0
    perturb xi~ = xi + delta with the PGD-l2 attack; with lambda~ = W xi~ - b, sigma~ = sum_k v_k erf(lambda~_k),
    e_k = (sigma~ - tau) v_k erf'(lambda~_k):
        w_k <- (w_k - (eta_w/N) e_k xi~)/|.|,  b_k <- b_k + (eta_b/N) e_k,  v_k <- v_k - (eta_v/N)(sigma~ - tau) erf(lambda~_k).
    """
    M, K, N = W.shape
    for r in nb.prange(M):
        z, xi, dl, x, g, mant, sgn, jj, lam = _scratch(N, K)
        e = np.empty(K)
        er = np.empty(K)
        Wr = W[r]
        b = bb[r]
        v = vv[r]
        key = keys[r]
        ek = ex_keys[r]
        ep = ex_pos[r]
        for k in range(n_steps):
            t = t0 + k
            c, ep = _draw_input(xi, z, mant, sgn, jj, key, np.uint64(t), stride, ek, ep, Bm, means, sds, cum)
            tau = labels[c]
            if eps > 0.0:
                _pgd(Wr, b, v, xi, tau, eps, pgd_steps, pgd_step, dl, x, g, lam)
                for i in range(N):
                    xi[i] += dl[i]
            _fields(Wr, b, xi, lam)
            sig = 0.0
            for q in range(K):
                er[q] = math.erf(lam[q])
                sig += v[q] * er[q]
            for q in range(K):
                e[q] = (sig - tau) * v[q] * _TWO_OVER_SQRT_PI * math.exp(-lam[q] * lam[q])
            for q in range(K):
                cq = eta_w * e[q] / N
                s2 = 0.0
                for i in range(N):
                    w = Wr[q, i] - cq * xi[i]
                    Wr[q, i] = w
                    s2 += w * w
                f = 1.0 / math.sqrt(s2)
                for i in range(N):
                    Wr[q, i] *= f
            for q in range(K):
                b[q] += eta_b * e[q] / N
                v[q] -= eta_v * (sig - tau) * er[q] / N
        ex_pos[r] = ep


@nb.njit(cache=True, parallel=True, fastmath=FASTMATH)
def committee_errors(W, bb, vv, test_keys, test_ex_keys, obs, n_test, stride, Bm, means, sds, labels, cum,
                     eps_test, steps, step):
    """Test error E and adversarial error S per replica on ``n_test`` fresh inputs (observation ``obs``):
    the fraction with tau sigma(xi) <= 0, and with tau sigma(xi + delta) <= 0 for the PGD-l2 attack delta."""
    M, K, N = W.shape
    E = np.zeros(M)
    S = np.zeros(M)
    for r in nb.prange(M):
        z, xi, dl, x, g, mant, sgn, jj, lam = _scratch(N, K)
        Wr = W[r]
        b = bb[r]
        v = vv[r]
        ne = 0
        ns = 0
        for j in range(n_test):
            n = np.uint64(obs * n_test + j)
            c, _ = _draw_input(xi, z, mant, sgn, jj, test_keys[r], n, stride, test_ex_keys[r],
                               n << np.uint64(20), Bm, means, sds, cum)
            tau = labels[c]
            _fields(Wr, b, xi, lam)
            sig = _output(v, lam)
            if tau * sig <= 0.0:
                ne += 1
            if eps_test > 0.0:
                _pgd(Wr, b, v, xi, tau, eps_test, steps, step, dl, x, g, lam)
                for i in range(N):
                    x[i] = xi[i] + dl[i]
                _fields(Wr, b, x, lam)
                sig = _output(v, lam)
            if tau * sig <= 0.0:
                ns += 1
        E[r] = ne / n_test
        S[r] = ns / n_test
    return E, S
