"""Compiled (numba) right-hand side of the committee machine's ODEs: the data averages of
:func:`theory.committee.averages`, fused over the quadrature nodes.

One pass per node and cluster: the fields lambda = mu_c + sqrt(v_c) L zeta, the PGD-l2 attack on the fields, then
the five averages accumulated in place; no temporaries over the nodes, and erf(lambda~_k), exp(-lambda~_k^2)
computed once per attack step and reused (the last step's values give sigma~, e_k and erf(lambda~_k) of the
averages).  The reference is the numpy function in :mod:`theory.committee`; tests/test_committee_fast.py checks
that the two agree to 1e-12.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["committee_averages"]

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


@nb.njit(cache=True, fastmath=False, error_model="numpy")  # numpy error model: no zero-division checks
def committee_averages(nodes, weights, blocks, L, PR, mu, means, priors, variances, labels, Q, R, b, v, eps,
                       steps, step, sign_known=False):
    """Averages per block of the rule (each block's weights scaled to sum 1).

    nodes (M, K) standard-normal points, weights (M,), ``blocks`` equal consecutive blocks; L (K, K) with
    L L^T = Q; PR = L^+ R (K, D), so that E[B.xi | zeta] = m_c + sqrt(v_c) zeta PR; mu (C, K) = R m_c - b;
    means (C, D), priors, variances, labels (C,).  Returns A (B, K, D), EU (B, K, K), EE (B, K, K), Eb (B, K),
    Ev (B, K) as defined in theory.committee.averages.

    ``sign_known``: sum_k |v_k| <= 1, so |sigma| < 1 and sign(sigma - tau) = -tau at the clean fields; the first
    attack step's direction g/|g|_Q then needs only that sign, and erf at the clean fields is not computed (the
    one place where the two differ, sigma = tau in floating point, needs every |lambda_k| > 5.9, where the
    integrand's factor erf'(lambda~_k) is below 1e-15).  L zeta and zeta PR are formed once per node for all
    clusters; the symmetric <v_c e_k e_l> is accumulated for l >= k and mirrored.
    """
    M, K = nodes.shape
    D = R.shape[1]
    C = priors.size
    per = M // blocks
    A = np.zeros((blocks, K, D))
    EU = np.zeros((blocks, K, K))
    EE = np.zeros((blocks, K, K))
    Eb = np.zeros((blocks, K))
    Ev = np.zeros((blocks, K))
    lz = np.empty(K)
    zp = np.empty(D)
    lam = np.empty(K)
    lt = np.empty(K)
    c = np.empty(K)
    g = np.empty(K)
    qg = np.empty(K)
    qc = np.empty(K)
    er = np.empty(K)
    ex = np.empty(K)
    e = np.empty(K)
    u = np.empty(K)
    y = np.empty(D)
    for m in range(M):
        blk = m // per
        for k in range(K):
            s = 0.0
            for j in range(K):
                s += L[k, j] * nodes[m, j]
            lz[k] = s
        for d in range(D):
            s = 0.0
            for j in range(K):
                s += nodes[m, j] * PR[j, d]
            zp[d] = s
        for cl in range(C):
            sd = math.sqrt(variances[cl])
            tau = labels[cl]
            var = variances[cl]
            W = priors[cl] * weights[m] * blocks
            for k in range(K):
                lam[k] = mu[cl, k] + sd * lz[k]
                lt[k] = lam[k]
                c[k] = 0.0
            # erf and exp at the current fields; the attack steps update the fields and recompute them
            sig = 0.0
            if eps != 0.0 and sign_known:
                for k in range(K):
                    ex[k] = math.exp(-lt[k] * lt[k])
                sig = 0.0  # sign(sigma - tau) = -tau: the direction's scale cancels
            else:
                for k in range(K):
                    er[k] = math.erf(lt[k])
                    ex[k] = math.exp(-lt[k] * lt[k])
                    sig += v[k] * er[k]
            if eps != 0.0:
                for k in range(K):
                    qc[k] = 0.0
                for _ in range(steps):  # Q c is carried along (qc), so each step forms one product with Q
                    for k in range(K):
                        g[k] = (sig - tau) * v[k] * _TWO_OVER_SQRT_PI * ex[k]
                    gn = 0.0
                    for k in range(K):
                        s = 0.0
                        for l in range(K):
                            s += g[l] * Q[l, k]
                        qg[k] = s
                        gn += s * g[k]
                    gn = math.sqrt(max(gn, 0.0))
                    if gn > 0.0:
                        f = step * eps / gn
                        for k in range(K):
                            c[k] += f * g[k]
                            qc[k] += f * qg[k]
                    cn = 0.0
                    for k in range(K):
                        cn += qc[k] * c[k]
                    cn = math.sqrt(max(cn, 0.0))
                    if cn > 0.0:
                        f = min(1.0, eps / cn)
                        for k in range(K):
                            c[k] *= f
                            qc[k] *= f
                    sig = 0.0
                    for k in range(K):
                        lt[k] = lam[k] + qc[k]
                        er[k] = math.erf(lt[k])
                        ex[k] = math.exp(-lt[k] * lt[k])
                        sig += v[k] * er[k]
            err = sig - tau
            for k in range(K):
                e[k] = err * v[k] * _TWO_OVER_SQRT_PI * ex[k]
                u[k] = lt[k] + b[k]
            for d in range(D):  # y_d = B_d.xi~ = hbar_d + (c R)_d
                s = means[cl, d] + sd * zp[d]
                for l in range(K):
                    s += c[l] * R[l, d]
                y[d] = s
            for k in range(K):
                we = W * e[k]
                wev = we * var
                for d in range(D):
                    A[blk, k, d] += we * y[d]
                for l in range(K):
                    EU[blk, k, l] += we * u[l]
                for l in range(k, K):
                    EE[blk, k, l] += wev * e[l]
                Eb[blk, k] += we
                Ev[blk, k] += W * err * er[k]
    for bl in range(blocks):
        for k in range(K):
            for l in range(k):
                EE[bl, k, l] = EE[bl, l, k]
    return A, EU, EE, Eb, Ev


@nb.njit(cache=True, fastmath=False)
def committee_line_nodes(zb, zd, mean, Lz, tau, v, outer_w, T, panels, grid, newton, xg, wg):
    """Compiled :func:`theory.committee.quadrature.line_nodes_on`: the line rule's nodes zeta (M, K) and weights of one
    cluster, the same steps in the same order (sign changes of sigma - tau on ``grid`` points of [-T, T], secant
    point and ``newton`` Newton steps clipped to the bracket, panels split at the roots, Gauss-Legendre xg, wg)."""
    Mo, K = zb.shape
    n = xg.size
    tg = np.linspace(-T, T, grid)
    edges = np.linspace(-T, T, panels + 1)
    dl = np.zeros(K)
    for k in range(K):
        for j in range(K):
            dl[k] += zd[j] * Lz[j, k]
    roots = np.empty((Mo, grid))
    nroot = np.zeros(Mo, np.int64)
    F = np.empty(grid)
    z = np.empty(K)
    lam = np.empty(K)
    for m in range(Mo):
        for i in range(grid):
            for j in range(K):
                z[j] = zb[m, j] + tg[i] * zd[j]
            s = 0.0
            for k in range(K):
                acc = 0.0
                for j in range(K):
                    acc += z[j] * Lz[j, k]
                s += v[k] * math.erf(mean[k] + acc)
            F[i] = s - tau
        for i in range(grid - 1):
            if (F[i] > 0) != (F[i + 1] > 0):
                lo, hi = tg[i], tg[i + 1]
                r = lo + (hi - lo) * F[i] / (F[i] - F[i + 1])
                for _ in range(newton):
                    f = 0.0
                    df = 0.0
                    for j in range(K):
                        z[j] = zb[m, j] + r * zd[j]
                    for k in range(K):
                        acc = 0.0
                        for j in range(K):
                            acc += z[j] * Lz[j, k]
                        lam[k] = mean[k] + acc
                        f += v[k] * math.erf(lam[k])
                        df += v[k] * _TWO_OVER_SQRT_PI * math.exp(-lam[k] * lam[k]) * dl[k]
                    f -= tau
                    step = f / df if df != 0.0 else 0.0
                    r = min(max(r - step, lo), hi)
                roots[m, nroot[m]] = r
                nroot[m] += 1
    total = 0
    for m in range(Mo):
        total += (panels + nroot[m]) * n
    Z = np.empty((total, K))
    Wt = np.empty(total)
    pos = 0
    norm = 1.0 / math.sqrt(2.0 * math.pi)
    for m in range(Mo):
        pts = np.empty(panels + 1 + nroot[m])
        pts[:panels + 1] = edges
        pts[panels + 1:] = roots[m, :nroot[m]]
        pts.sort()
        for i in range(pts.size - 1):
            a, bnd = pts[i], pts[i + 1]
            if not bnd > a:
                continue
            half = 0.5 * (bnd - a)
            mid = 0.5 * (bnd + a)
            for q in range(n):
                t = mid + half * xg[q]
                w = (half * wg[q]) * math.exp(-0.5 * t * t) * norm * outer_w[m]
                if w > 0:
                    for j in range(K):
                        Z[pos, j] = zb[m, j] + t * zd[j]
                    Wt[pos] = w
                    pos += 1
    return Z[:pos], Wt[:pos]
