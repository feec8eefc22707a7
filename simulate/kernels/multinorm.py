"""Monte Carlo kernel (numba) of the multinorm family: N-dimensional online SGD of the linear erf classifier on
the Tramer-Boneh distribution with the exact l_inf / l_1 / l_2 attacks and the multi-perturbation schemes
(notation of :mod:`theory.multinorm.params`).

One step of replica r (N = d + 1, coordinate 0 the robust feature):

    y = +-1 (1/2 each), x_0 = y w.p. p0 else -y, x_i = y a/sqrt(d) + z_i;  h = w.x - b
    attack points x~ = x + delta and their fields h~ = h + w.delta:
        l_inf  delta = -y (e/sqrt d) sign(w)           h~ = h - y (e/sqrt d) |w|_1
        l_1    delta = -y eps1 sign(w_j) e_j, j = argmax_j |w_j|  (first index on ties)
                                                       h~ = h - y eps1 |w_j|
        l_2    delta = -y eps2 w                       h~ = h - y eps2
    D = dL/dh~ (:func:`simulate.kernels.special.dloss`),  w <- (w - (eta_w/N) D x~)/|.|,  b <- b + (eta_b/N) D

with the scheme choosing the attack point(s): std (x~ = x), adv_inf, adv_1, adv_2, avg (D x~ and D averaged
over the l_inf and l_1 points), max (the point of larger loss; the loss is strictly decreasing in y h~, so it
is the point of smaller y h~, ties to l_inf), sat (l_inf or l_1 with probability 1/2 from the example's own
stream).

O(N) per step in two passes over the weights (after the vectorised generation of the random bits): the first
makes the noise and accumulates u.z, sum u, the same sums with sign(u), |z|^2, sum z, |u|_1 and argmax |u|
(everything the attack points need); the second applies the update and accumulates the new |u|^2.  w = A u with a lazy scale A = 1/|u|, folded into u every
``renorm_every`` steps.  Random numbers from :mod:`simulate.kernels.rng`: the noise z_i of step t is word
t * stride + i of the replica's counter-based stream, the label, the robust feature's sign, the SAT coin and
rejected ziggurat draws come from its sequential stream (key, position), so a checkpoint stores one integer
per replica and resuming is bit-identical.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from .rng import FASTMATH, GAMMA, ZIG_RATIO, ZIG_XW, bits_pass, mix64, u01, window_scratch, word, zig_finish
from .special import dloss

__all__ = ["SCHEME_CODES", "multinorm_steps", "plain_steps", "seed_plain"]

#: scheme name -> the integer the kernels take
SCHEME_CODES = {"std": 0, "adv_inf": 1, "adv_1": 2, "adv_2": 3, "avg": 4, "max": 5, "sat": 6}


@nb.njit(cache=True, parallel=True, fastmath=FASTMATH)
def multinorm_steps(U, A, bb, ex_pos, keys, ex_keys, stride, t0, n_steps, scheme, a, p0, e, eps1, eps2, eta_w,
                    eta_b, loss, renorm_every):
    """Advance every replica r (rows of U (M, N), scales A (M,), thresholds bb (M,), stream positions
    ex_pos (M,) uint64; all updated in place) by ``n_steps`` steps t = t0, ..., t0 + n_steps - 1.

    keys, ex_keys (M,) uint64: the counter-based noise stream and the sequential stream of each replica;
    stride: words per step in the noise stream (a power of two >= d).  scheme: :data:`SCHEME_CODES`;
    loss 0 quadratic, 1 cross-entropy.  The step is that of the module docstring.
    """
    M, N = U.shape
    d = N - 1
    m_scale = a / math.sqrt(d)
    e_d = e / math.sqrt(d)
    for r in nb.prange(M):
        z, mant, sgn, jj, rej = window_scratch(d)
        fm = mant.view(np.float64)
        fs = sgn.view(np.float64)
        u = U[r]
        As = A[r]
        b = bb[r]
        key = keys[r]
        ek = ex_keys[r]
        ep = ex_pos[r]
        for k in range(n_steps):
            t = t0 + k
            y = 1.0 if u01(word(ek, ep)) < 0.5 else -1.0
            x0 = y if u01(word(ek, ep + np.uint64(1))) < p0 else -y
            ep += np.uint64(2)
            use_inf = True
            if scheme == 6:
                use_inf = u01(word(ek, ep)) < 0.5
                ep += np.uint64(1)
            m = y * m_scale
            base = key + np.uint64(t) * stride * GAMMA
            bits_pass(mant, sgn, jj, base)
            # pass 1: the noise and every sum the attack points need (weak coordinates i = 1..d are u[i], z[i-1])
            uz = 0.0
            su = 0.0
            sz = 0.0
            zz = 0.0
            sgz = 0.0
            ssg = 0.0
            l1 = 0.0
            nrej = 0
            jmax = 0              # argmax_j |u_j| over all N coordinates, first index on ties
            vmax = abs(u[0])
            for i in range(d):
                v = fm[i] - 1.0
                j = jj[i]
                x = v * ZIG_XW[j] * fs[i]
                z[i] = x
                ui = u[i + 1]
                sg = 1.0 if ui > 0.0 else (-1.0 if ui < 0.0 else 0.0)
                uz += ui * x
                su += ui
                sz += x
                zz += x * x
                sgz += sg * x
                ssg += sg
                l1 += abs(ui)
                if abs(ui) > vmax:
                    vmax = abs(ui)
                    jmax = i + 1
                if v >= ZIG_RATIO[j]:  # rejected by the fast path (about 1.5 %): finished below
                    rej[nrej] = i
                    nrej += 1
            for q in range(nrej):  # finish the rejected draws and correct the sums
                i = rej[q]
                old = z[i]
                z[i], ep = zig_finish(mix64(base + np.uint64(i) * GAMMA), ek, ep)
                ui = u[i + 1]
                sg = 1.0 if ui > 0.0 else (-1.0 if ui < 0.0 else 0.0)
                dz = z[i] - old
                uz += ui * dz
                sz += dz
                zz += z[i] * z[i] - old * old
                sgz += sg * dz
            u0 = u[0]
            h = As * (u0 * x0 + m * su + uz) - b
            # fields at the attack points
            w1 = As * (abs(u0) + l1)       # |w|_1
            wj = As * vmax                 # max_j |w_j|
            h_inf = h - y * e_d * w1
            h_1 = h - y * eps1 * wj
            h_2 = h - y * eps2
            # coefficients of the update: w <- w - C x - sum_k c_k delta_k (unnormalised), b <- b + Db
            c_clean = 0.0
            c_inf = 0.0
            c_1 = 0.0
            c_2 = 0.0
            if scheme == 0:
                c_clean = dloss(h, y, loss, 1.0)
            elif scheme == 1:
                c_inf = dloss(h_inf, y, loss, 1.0)
            elif scheme == 2:
                c_1 = dloss(h_1, y, loss, 1.0)
            elif scheme == 3:
                c_2 = dloss(h_2, y, loss, 1.0)
            elif scheme == 4:
                c_inf = 0.5 * dloss(h_inf, y, loss, 1.0)
                c_1 = 0.5 * dloss(h_1, y, loss, 1.0)
            elif scheme == 5:
                if y * h_inf <= y * h_1:
                    c_inf = dloss(h_inf, y, loss, 1.0)
                else:
                    c_1 = dloss(h_1, y, loss, 1.0)
            else:
                if use_inf:
                    c_inf = dloss(h_inf, y, loss, 1.0)
                else:
                    c_1 = dloss(h_1, y, loss, 1.0)
            Dsum = c_clean + c_inf + c_1 + c_2
            f = eta_w / N
            # u_new = u - (f/As) [Dsum x - y c_inf e_d sign(u) - y c_2 eps2 As u] + (f/As) y c_1 eps1 sign(u_j) e_j
            kx = -f * Dsum / As
            ks = f * y * c_inf * e_d / As
            ku = 1.0 + f * y * c_2 * eps2
            sgj = 1.0 if u[jmax] > 0.0 else (-1.0 if u[jmax] < 0.0 else 0.0)
            kj = f * y * c_1 * eps1 * sgj / As
            # pass 2: the update and the new |u|^2
            sg0 = 1.0 if u0 > 0.0 else (-1.0 if u0 < 0.0 else 0.0)
            nu0 = ku * u0 + kx * x0 + ks * sg0
            u[0] = nu0
            s2 = nu0 * nu0
            for i in range(d):
                ui = u[i + 1]
                sg = 1.0 if ui > 0.0 else (-1.0 if ui < 0.0 else 0.0)
                nui = ku * ui + kx * (m + z[i]) + ks * sg
                u[i + 1] = nui
                s2 += nui * nui
            if kj != 0.0:
                old = u[jmax]
                u[jmax] = old + kj
                s2 += (old + kj) * (old + kj) - old * old
            As = 1.0 / math.sqrt(s2)
            b += eta_b * Dsum / N
            if (t + 1) % renorm_every == 0:  # fold the scale into u: |u| = 1 exactly
                s2 = 0.0
                for i in range(N):
                    s2 += u[i] * u[i]
                g = 1.0 / math.sqrt(s2)
                for i in range(N):
                    u[i] *= g
                As = 1.0
        A[r] = As
        bb[r] = b
        ex_pos[r] = ep


# ---------------------------------------------------------------------------------------------------
# The plain loop: the same SGD written directly (w explicit, np.random per element, the attack vectors
# built explicitly, np.argmax, an explicit renormalisation).  The baseline of bench/multinorm.py and an
# independent implementation for the tests (it shares no code with the kernel above but dloss).
# ---------------------------------------------------------------------------------------------------
@nb.njit(cache=True)
def seed_plain(seed):
    np.random.seed(seed)


@nb.njit(cache=True)
def plain_steps(w, b, n_steps, scheme, a, p0, e, eps1, eps2, eta_w, eta_b, loss):
    """``n_steps`` steps of the SGD on one replica's explicit unit vector w (updated in place, w[0] the robust
    weight); returns the new b.  Random numbers from numba's np.random (seed with :func:`seed_plain`)."""
    N = w.size
    d = N - 1
    x = np.empty(N)
    for _ in range(n_steps):
        y = 1.0 if np.random.random() < 0.5 else -1.0
        x[0] = y if np.random.random() < p0 else -y
        for i in range(1, N):
            x[i] = y * a / math.sqrt(d) + np.random.standard_normal()
        d_inf = -y * (e / math.sqrt(d)) * np.sign(w)
        j = np.argmax(np.abs(w))
        d_1 = np.zeros(N)
        d_1[j] = -y * eps1 * np.sign(w[j])
        d_2 = -y * eps2 * w
        coin = np.random.random() < 0.5 if scheme == 6 else True
        g = np.zeros(N)
        Db = 0.0
        if scheme == 0:
            pts = [(x, 1.0)]
        elif scheme == 1:
            pts = [(x + d_inf, 1.0)]
        elif scheme == 2:
            pts = [(x + d_1, 1.0)]
        elif scheme == 3:
            pts = [(x + d_2, 1.0)]
        elif scheme == 4:
            pts = [(x + d_inf, 0.5), (x + d_1, 0.5)]
        elif scheme == 5:
            xi, x1 = x + d_inf, x + d_1
            li = (math.erf(np.dot(w, xi) - b) - y) ** 2
            l1 = (math.erf(np.dot(w, x1) - b) - y) ** 2
            if loss == 1:
                li = -math.log((1.0 + y * math.erf(np.dot(w, xi) - b)) / 2.0 + 1e-300)
                l1 = -math.log((1.0 + y * math.erf(np.dot(w, x1) - b)) / 2.0 + 1e-300)
            pts = [(xi, 1.0)] if li >= l1 else [(x1, 1.0)]
        else:
            pts = [(x + d_inf, 1.0)] if coin else [(x + d_1, 1.0)]
        for xt, wt in pts:
            D = dloss(np.dot(w, xt) - b, y, loss, 1.0)
            g += wt * D * xt
            Db += wt * D
        w -= (eta_w / N) * g
        w /= np.linalg.norm(w)
        b += (eta_b / N) * Db
    return b
