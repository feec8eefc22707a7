"""numba kernels of the Monte Carlo engine (the only module of the project that imports numba).

Random numbers
--------------
*Generator*: SplitMix64 (G. L. Steele, D. Lea, C. H. Flood, "Fast splittable pseudorandom number
generators", OOPSLA 2014; reference C code by S. Vigna, https://prng.di.unimi.it/splitmix64.c).  Word n of
a stream with key k is ``mix64(k + n * GAMMA)`` with GAMMA = 0x9E3779B97F4A7C15 and the variant-13 output
mix of Stafford; it passes TestU01's BigCrush.  Written here (not taken from a library) because it must run
inside the kernels, and because it is *counter based*: word n is computed directly from (k, n), so the N
words of one SGD step are generated in a loop that LLVM vectorises (AVX2), and the generator's state is
just an integer that a checkpoint stores.  Every stream is a window of the one 2^64-periodic sequence at
a random offset (the key, drawn from the replica's ``SeedSequence``); two windows of length L overlap with
probability about 2L/2^64 (L = 10^12 words: 1e-7).

*Normals*: the ziggurat method of G. Marsaglia and W. W. Tsang (J. Stat. Softw. 5(8), 2000) with 256
layers, in the 64-bit form that NumPy uses, with independent bits for the layer (8 bits), the sign (1 bit)
and the abscissa (52 bits), which removes the index/value correlation found by J. A. Doornik (2005).  The
fast path (98.5 % of draws; 1.51 % measured rejected) needs one word and two table look-ups; the wedge
and tail draws take extra words from a second, sequential stream.  Tail: Marsaglia's exponential rejection method for x > r.

*Gamma / chi-square*: Marsaglia and Tsang, "A simple method for generating gamma variables", ACM TOMS
26(3), 2000 (with the U^(1/k) boost for shape k < 1).

Loss derivative
---------------
``dloss`` is the numba twin of :func:`theory.ode.loss_derivative` (tests compare them).  ``math`` has erfc
but not erfcx, and numba cannot call scipy.special, so erfcx is written here (exp(x^2) erfc(x) for
x < 12, its asymptotic series beyond, erfcx(-x) = 2 exp(x^2) - erfcx(x)).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["GAMMA", "mix64", "stream_words", "stream_uniforms", "normals_counter", "normal_seq",
           "chi2_seq", "dloss", "erfcx", "full_steps", "reduced_steps", "explicit_steps",
           "baseline_numba_steps", "baseline_numba_parallel", "ZIG_X"]

GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_ONE_BITS = np.uint64(0x3FF0000000000000)  # the bits of 1.0: OR-ing 52 random bits gives [1, 2)
_SIGN_BIT = np.uint64(0x8000000000000000)
_U53 = 1.0 / 9007199254740992.0  # 2^-53
_SQRT_PI = math.sqrt(math.pi)

# Fast-math flags for the kernels: reassociation lets LLVM vectorise the dot products.  No 'nnan'/'ninf':
# NaN and inf must keep their meaning.
_FAST = {"reassoc", "contract", "nsz", "arcp"}


# ---------------------------------------------------------------------------------------------------
# Ziggurat tables (256 layers of equal area v under f(x) = exp(-x^2/2); r, v from Marsaglia & Tsang)
# ---------------------------------------------------------------------------------------------------
def _ziggurat_tables(n: int = 256, r: float = 3.6541528853610088, v: float = 0.00492867323399):
    f = lambda x: math.exp(-0.5 * x * x)  # noqa: E731
    x = np.zeros(n + 1)
    x[0] = v / f(r)  # width of the base strip (rectangle below f(r) plus the tail), as a rectangle
    x[1] = r
    for i in range(1, n - 1):
        x[i + 1] = math.sqrt(-2.0 * math.log(v / x[i] + f(x[i])))
    x[n] = 0.0
    return x, x[1:] / x[:-1], np.exp(-0.5 * x * x)


ZIG_X, _ZIG_RATIO, _ZIG_F = _ziggurat_tables()
_ZIG_XW = ZIG_X[:256].copy()
_ZIG_R = float(ZIG_X[1])
_SIGNS = np.array([1.0, -1.0])


@nb.njit(inline="always")
def mix64(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@nb.njit(inline="always")
def _word(key, pos):
    return mix64(key + pos * GAMMA)


@nb.njit(inline="always")
def _u01(bits):
    """Uniform on [0, 1) from the top 53 bits."""
    return np.float64(bits >> np.uint64(11)) * _U53


@nb.njit(inline="always")
def _u01_open(bits):
    """Uniform on (0, 1]."""
    return (np.float64(bits >> np.uint64(11)) + 1.0) * _U53


@nb.njit(cache=True)
def _zig_finish(bits, key, pos):
    """Complete a ziggurat draw whose first word ``bits`` may be rejected; extra words come from the
    sequential stream (key, pos).  Returns (normal, new pos)."""
    while True:
        j = np.int64(bits & np.uint64(0xFF))
        neg = ((bits >> np.uint64(8)) & np.uint64(1)) == np.uint64(1)
        u = np.float64(bits >> np.uint64(12)) * (1.0 / 4503599627370496.0)  # 52 bits, [0, 1)
        x = u * _ZIG_XW[j]
        if u < _ZIG_RATIO[j]:
            return (-x if neg else x), pos
        if j == 0:  # tail x > r: Marsaglia's exponential rejection
            while True:
                xx = -math.log(_u01_open(_word(key, pos))) / _ZIG_R
                yy = -math.log(_u01_open(_word(key, pos + np.uint64(1))))
                pos += np.uint64(2)
                if yy + yy > xx * xx:
                    break
            t = _ZIG_R + xx
            return (-t if neg else t), pos
        # wedge between layers j and j+1
        y = _ZIG_F[j] + _u01(_word(key, pos)) * (_ZIG_F[j + 1] - _ZIG_F[j])
        pos += np.uint64(1)
        if y < math.exp(-0.5 * x * x):
            return (-x if neg else x), pos
        bits = _word(key, pos)
        pos += np.uint64(1)


@nb.njit(inline="always")
def normal_seq(key, pos):
    """One standard normal from the sequential stream (key, pos); returns (z, new pos).

    The fast path (98.5 %) is inlined; the rest is completed by :func:`_zig_finish`."""
    bits = _word(key, pos)
    j = np.int64(bits & np.uint64(0xFF))
    u = np.float64(bits >> np.uint64(12)) * (1.0 / 4503599627370496.0)
    if u < _ZIG_RATIO[j]:  # branch-free sign: a 50/50 branch would be mispredicted half the time
        return u * _ZIG_XW[j] * _SIGNS[np.int64((bits >> np.uint64(8)) & np.uint64(1))], pos + np.uint64(1)
    return _zig_finish(bits, key, pos + np.uint64(1))


@nb.njit(inline="always")
def _bits_pass(mant, sgn, jj, base):
    """Word i of the window starting at ``base`` split into independent fields: 52 bits as a double in
    [1, 2) (``mant``), bit 8 as +-1.0 (``sgn``), bits 0-7 as the layer (``jj``).  Only shifts, ands, ors
    and the SplitMix64 mix: LLVM vectorises this loop (no integer-to-double conversion needed)."""
    for i in range(mant.size):
        bits = mix64(base + np.uint64(i) * GAMMA)
        mant[i] = (bits >> np.uint64(12)) | _ONE_BITS
        sgn[i] = ((bits << np.uint64(55)) & _SIGN_BIT) | _ONE_BITS
        jj[i] = np.int64(bits & np.uint64(0xFF))


@nb.njit(inline="always")
def _fix_rejected(z, mant, jj, base, ex_key, ex_pos):
    """Finish, in place, the ziggurat draws of the window whose fast path rejected (about 1.5 %)."""
    fm = mant.view(np.float64)
    for i in range(z.size):
        if fm[i] - 1.0 >= _ZIG_RATIO[jj[i]]:
            z[i], ex_pos = _zig_finish(mix64(base + np.uint64(i) * GAMMA), ex_key, ex_pos)
    return ex_pos


@nb.njit(cache=True, fastmath=_FAST)
def normals_counter(out, mant, sgn, jj, key, start, ex_key, ex_pos):
    """out[i] = the normal of word (start + i) of stream ``key``; rejected draws are finished with words of
    the sequential stream (ex_key, ex_pos).  ``mant``, ``sgn`` (uint64) and ``jj`` (int64) are scratch
    arrays of the size of ``out``.  Returns the new ex_pos."""
    base = key + start * GAMMA
    _bits_pass(mant, sgn, jj, base)
    fm = mant.view(np.float64)
    fs = sgn.view(np.float64)
    for i in range(out.size):
        out[i] = (fm[i] - 1.0) * _ZIG_XW[jj[i]] * fs[i]
    return _fix_rejected(out, mant, jj, base, ex_key, ex_pos)


@nb.njit(cache=True)
def stream_words(key, start, n):
    """Words start, ..., start+n-1 of stream ``key`` (for tests against the reference algorithm)."""
    out = np.empty(n, np.uint64)
    for i in range(n):
        out[i] = _word(key, start + np.uint64(i))
    return out


@nb.njit(cache=True, parallel=True)
def stream_uniforms(keys, start, n):
    """U[r, i] uniform on [0, 1) from word (start + i) of stream keys[r]; shape (len(keys), n)."""
    out = np.empty((keys.size, n))
    for r in nb.prange(keys.size):
        for i in range(n):
            out[r, i] = _u01(_word(keys[r], start + np.uint64(i)))
    return out


@nb.njit(cache=True)
def normals_seq_array(key, pos, n):
    """n normals from the sequential stream (key, pos) (for tests); returns (z, new pos)."""
    out = np.empty(n)
    for i in range(n):
        out[i], pos = normal_seq(key, pos)
    return out, pos


@nb.njit(inline="always")
def _gamma_mt(d, c, key, pos):
    """Marsaglia-Tsang Gamma(d + 1/3) for d >= 2/3, with c = 1/sqrt(9 d); returns (x, pos)."""
    while True:
        z, pos = normal_seq(key, pos)
        t = 1.0 + c * z
        if t <= 0.0:
            continue
        v = t * t * t
        uu = _u01_open(_word(key, pos))
        pos += np.uint64(1)
        z2 = z * z
        if uu < 1.0 - 0.0331 * z2 * z2:  # squeeze of Marsaglia & Tsang: accepts ~98% without logs
            return d * v, pos
        if math.log(uu) < 0.5 * z2 + d - d * v + d * math.log(v):
            return d * v, pos


@nb.njit(inline="always")
def chi2_seq(dof, key, pos):
    """A chi-square variable with ``dof`` >= 0 degrees of freedom (2 x Gamma(dof/2)); returns (x, pos)."""
    if dof <= 0:
        return 0.0, pos
    k = 0.5 * dof
    if k >= 1.0:
        d = k - 1.0 / 3.0
        g, pos = _gamma_mt(d, 1.0 / math.sqrt(9.0 * d), key, pos)
        return 2.0 * g, pos
    # Gamma(k) = Gamma(k + 1) U^(1/k) for shape k < 1
    boost = _u01_open(_word(key, pos)) ** (1.0 / k)
    pos += np.uint64(1)
    d = k + 1.0 - 1.0 / 3.0
    g, pos = _gamma_mt(d, 1.0 / math.sqrt(9.0 * d), key, pos)
    return 2.0 * g * boost, pos


@nb.njit(cache=True)
def chi2_seq_array(dof, key, pos, n):
    out = np.empty(n)
    for i in range(n):
        out[i], pos = chi2_seq(dof, key, pos)
    return out, pos


# ---------------------------------------------------------------------------------------------------
# Loss derivative delta = dL/dx (twin of theory.ode.loss_derivative)
# ---------------------------------------------------------------------------------------------------
@nb.njit(cache=True)
def _erfcx_pos(x):
    if x < 12.0:
        return math.exp(x * x) * math.erfc(x)
    # asymptotic series 1/(x sqrt pi) sum_k (-1)^k (2k-1)!!/(2x^2)^k; 10 terms: error < 1e-17 at x = 12
    t = 1.0 / (2.0 * x * x)
    s = 1.0
    term = 1.0
    for k in range(1, 11):
        term *= -(2.0 * k - 1.0) * t
        s += term
    return s / (x * _SQRT_PI)


@nb.njit(cache=True)
def erfcx(x):
    """Scaled complementary error function exp(x^2) erfc(x)."""
    if x >= 0.0:
        return _erfcx_pos(x)
    if x < -26.6:
        return math.inf
    return 2.0 * math.exp(x * x) - _erfcx_pos(-x)


@nb.njit(cache=True)
def dloss(x, tau, loss, s):
    """delta = dL/dx for sigma = erf(x/s); loss 0 = quadratic (sigma - tau)^2/2, 1 = cross-entropy."""
    y = x / s
    if loss == 0:
        return (math.erf(y) - tau) * (2.0 / (s * _SQRT_PI)) * math.exp(-y * y)
    return -tau * (2.0 / (s * _SQRT_PI)) / erfcx(-tau * y)


@nb.njit(cache=True)
def dloss_array(x, tau, loss, s):
    out = np.empty(x.size)
    for i in range(x.size):
        out[i] = dloss(x[i], tau, loss, s)
    return out


# ---------------------------------------------------------------------------------------------------
# Full engine: N-dimensional SGD, w = a * u stored with a lazy scale a
# ---------------------------------------------------------------------------------------------------
@nb.njit(cache=True, parallel=True, fastmath=_FAST)
def full_steps(U, A, bb, keys, ex_keys, ex_pos, t0, n_steps, stride, Bv, jB, mean, sd_iso, sd_diag, iso,
               prior, eta_w, eta_b, eps_fixed, eps_arr, use_eps_arr, non_robust_only, loss, erf_scale,
               renorm_every):
    """Advance every replica r by ``n_steps`` SGD steps t = t0, ..., t0 + n_steps - 1.

    State of replica r: w = A[r] * U[r] (|w| = 1), threshold bb[r], extra-word position ex_pos[r].
    Step t of replica r: label tau = +1 iff u < prior (u from the sequential stream), noise z_i = normal
    from word t*stride + i of stream keys[r]; xi_i = mean[c] B_i + sd_c,i z_i (c = 0 for tau = +1, 1 for
    -1; sd_c,i = sd_iso[c] if iso else sd_diag[c, i]); budget e = eps_arr[r, t - t0] or eps_fixed; then

        x = w.xi - tau e - b,  delta = dL/dx,  c = eta_w delta / N,  g = 1 + c tau e,
        w~ = g w - c xi,  |w~|^2 = g^2 - 2 g c (w.xi) + c^2 |xi|^2,  w <- w~/|w~|,  b <- b + eta_b delta/N

    (skipped when non_robust_only and tau x >= 0).  With w = a u: u <- u - c/(a g) xi and
    a <- a g/|w~|, one pass over u.  Every ``renorm_every`` steps u is rescaled to |u| = 1 exactly (a = 1),
    which removes the rounding drift of the closed-form norm.

    Fast path (isotropic clusters and B = e_jB, jB >= 0): xi = m e_jB + sd z is never stored; the fast
    ziggurat values, u.z and |z|^2 come from one fused pass, corrected afterwards for the rare rejected
    draws, and the update is u += (k sd) z plus one coordinate.
    """
    M, N = U.shape
    coord = iso and jB >= 0
    for r in nb.prange(M):
        z = np.empty(N)
        mant = np.empty(N, np.uint64)
        sgn = np.empty(N, np.uint64)
        jj = np.empty(N, np.int64)
        rej = np.empty(N, np.int64)
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
            tau = 1.0 if _u01(_word(ek, ep)) < prior else -1.0
            ep += np.uint64(1)
            ci = 0 if tau > 0 else 1
            e = eps_arr[r, k] if use_eps_arr else eps_fixed
            m = mean[ci]
            base = key + np.uint64(t) * stride * GAMMA
            _bits_pass(mant, sgn, jj, base)
            if coord:
                sd = sd_iso[ci]
                uz = 0.0
                zz = 0.0
                nrej = 0
                for i in range(N):
                    v = fm[i] - 1.0
                    j = jj[i]
                    x = v * _ZIG_XW[j] * fs[i]
                    z[i] = x
                    uz += u[i] * x
                    zz += x * x
                    if v >= _ZIG_RATIO[j]:  # rejected by the fast path (about 1.5 %): remember it
                        rej[nrej] = i
                        nrej += 1
                for q in range(nrej):  # finish the rejected draws and correct the sums
                    i = rej[q]
                    old = z[i]
                    z[i], ep = _zig_finish(mix64(base + np.uint64(i) * GAMMA), ek, ep)
                    uz += u[i] * (z[i] - old)
                    zz += z[i] * z[i] - old * old
                hw = m * u[jB] + sd * uz
                xx = m * m + 2.0 * m * sd * z[jB] + sd * sd * zz
            else:
                for i in range(N):
                    z[i] = (fm[i] - 1.0) * _ZIG_XW[jj[i]] * fs[i]
                ep = _fix_rejected(z, mant, jj, base, ek, ep)
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
@nb.njit(cache=True, fastmath=_FAST)
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
    tau = 1.0 if _u01(_word(key, p)) < prior else -1.0
    p += np.uint64(1)
    z1, p = normal_seq(key, p)
    z2, p = normal_seq(key, p)
    if big:
        C, p = _gamma_mt(d_mt, c_mt, key, p)
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


# ---------------------------------------------------------------------------------------------------
# Baseline for bench/mc.py: the straightforward loop with np.random.standard_normal per element
# ---------------------------------------------------------------------------------------------------
@nb.njit(cache=True)
def _seed_numba(seed):
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
