"""Random numbers of the Monte Carlo kernels (numba): SplitMix64 streams, ziggurat normals, gamma/chi-square.

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

Every model's kernel (the linear classifier's in :mod:`simulate.kernels.linear`, and its siblings) draws
from these streams, so that all engines share one seeding convention.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["GAMMA", "FASTMATH", "mix64", "word", "u01", "u01_open", "zig_finish", "normal_seq", "bits_pass",
           "window_scratch", "fix_rejected", "normals_counter", "stream_words", "stream_uniforms", "normals_seq_array",
           "gamma_mt", "chi2_seq", "chi2_seq_array", "ZIG_X", "ZIG_XW", "ZIG_RATIO"]

GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_ONE_BITS = np.uint64(0x3FF0000000000000)  # the bits of 1.0: OR-ing 52 random bits gives [1, 2)
_SIGN_BIT = np.uint64(0x8000000000000000)
_U53 = 1.0 / 9007199254740992.0  # 2^-53

# Fast-math flags for the kernels: reassociation lets LLVM vectorise the dot products.  No 'nnan'/'ninf':
# NaN and inf must keep their meaning.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


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


ZIG_X, ZIG_RATIO, _ZIG_F = _ziggurat_tables()
ZIG_XW = ZIG_X[:256].copy()
_ZIG_R = float(ZIG_X[1])
_SIGNS = np.array([1.0, -1.0])


@nb.njit(inline="always")
def mix64(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@nb.njit(inline="always")
def word(key, pos):
    return mix64(key + pos * GAMMA)


@nb.njit(inline="always")
def u01(bits):
    """Uniform on [0, 1) from the top 53 bits."""
    return np.float64(bits >> np.uint64(11)) * _U53


@nb.njit(inline="always")
def u01_open(bits):
    """Uniform on (0, 1]."""
    return (np.float64(bits >> np.uint64(11)) + 1.0) * _U53


@nb.njit(cache=True)
def zig_finish(bits, key, pos):
    """Complete a ziggurat draw whose first word ``bits`` may be rejected; extra words come from the
    sequential stream (key, pos).  Returns (normal, new pos)."""
    while True:
        j = np.int64(bits & np.uint64(0xFF))
        neg = ((bits >> np.uint64(8)) & np.uint64(1)) == np.uint64(1)
        u = np.float64(bits >> np.uint64(12)) * (1.0 / 4503599627370496.0)  # 52 bits, [0, 1)
        x = u * ZIG_XW[j]
        if u < ZIG_RATIO[j]:
            return (-x if neg else x), pos
        if j == 0:  # tail x > r: Marsaglia's exponential rejection
            while True:
                xx = -math.log(u01_open(word(key, pos))) / _ZIG_R
                yy = -math.log(u01_open(word(key, pos + np.uint64(1))))
                pos += np.uint64(2)
                if yy + yy > xx * xx:
                    break
            t = _ZIG_R + xx
            return (-t if neg else t), pos
        # wedge between layers j and j+1
        y = _ZIG_F[j] + u01(word(key, pos)) * (_ZIG_F[j + 1] - _ZIG_F[j])
        pos += np.uint64(1)
        if y < math.exp(-0.5 * x * x):
            return (-x if neg else x), pos
        bits = word(key, pos)
        pos += np.uint64(1)


@nb.njit(inline="always")
def normal_seq(key, pos):
    """One standard normal from the sequential stream (key, pos); returns (z, new pos).

    The fast path (98.5 %) is inlined; the rest is completed by :func:`zig_finish`."""
    bits = word(key, pos)
    j = np.int64(bits & np.uint64(0xFF))
    u = np.float64(bits >> np.uint64(12)) * (1.0 / 4503599627370496.0)
    if u < ZIG_RATIO[j]:  # branch-free sign: a 50/50 branch would be mispredicted half the time
        return u * ZIG_XW[j] * _SIGNS[np.int64((bits >> np.uint64(8)) & np.uint64(1))], pos + np.uint64(1)
    return zig_finish(bits, key, pos + np.uint64(1))


@nb.njit(inline="always")
def bits_pass(mant, sgn, jj, base):
    """Word i of the window starting at ``base`` split into independent fields: 52 bits as a double in
    [1, 2) (``mant``), bit 8 as +-1.0 (``sgn``), bits 0-7 as the layer (``jj``).  Only shifts, ands, ors
    and the SplitMix64 mix: LLVM vectorises this loop (no integer-to-double conversion needed)."""
    for i in range(mant.size):
        bits = mix64(base + np.uint64(i) * GAMMA)
        mant[i] = (bits >> np.uint64(12)) | _ONE_BITS
        sgn[i] = ((bits << np.uint64(55)) & _SIGN_BIT) | _ONE_BITS
        jj[i] = np.int64(bits & np.uint64(0xFF))


@nb.njit(inline="always")
def window_scratch(n):
    """A replica's work arrays for a window of n normals drawn with :func:`bits_pass`: z (float64), mant and sgn
    (uint64), jj and rej (int64, the layers and the indices of the rejected draws)."""
    return np.empty(n), np.empty(n, np.uint64), np.empty(n, np.uint64), np.empty(n, np.int64), np.empty(n, np.int64)


@nb.njit(inline="always")
def fix_rejected(z, mant, jj, base, ex_key, ex_pos):
    """Finish, in place, the ziggurat draws of the window whose fast path rejected (about 1.5 %)."""
    fm = mant.view(np.float64)
    for i in range(z.size):
        if fm[i] - 1.0 >= ZIG_RATIO[jj[i]]:
            z[i], ex_pos = zig_finish(mix64(base + np.uint64(i) * GAMMA), ex_key, ex_pos)
    return ex_pos


@nb.njit(cache=True, fastmath=FASTMATH)
def normals_counter(out, mant, sgn, jj, key, start, ex_key, ex_pos):
    """out[i] = the normal of word (start + i) of stream ``key``; rejected draws are finished with words of
    the sequential stream (ex_key, ex_pos).  ``mant``, ``sgn`` (uint64) and ``jj`` (int64) are scratch
    arrays of the size of ``out``.  Returns the new ex_pos."""
    base = key + start * GAMMA
    bits_pass(mant, sgn, jj, base)
    fm = mant.view(np.float64)
    fs = sgn.view(np.float64)
    for i in range(out.size):
        out[i] = (fm[i] - 1.0) * ZIG_XW[jj[i]] * fs[i]
    return fix_rejected(out, mant, jj, base, ex_key, ex_pos)


@nb.njit(cache=True)
def stream_words(key, start, n):
    """Words start, ..., start+n-1 of stream ``key`` (for tests against the reference algorithm)."""
    out = np.empty(n, np.uint64)
    for i in range(n):
        out[i] = word(key, start + np.uint64(i))
    return out


@nb.njit(cache=True, parallel=True)
def stream_uniforms(keys, start, n):
    """U[r, i] uniform on [0, 1) from word (start + i) of stream keys[r]; shape (len(keys), n)."""
    out = np.empty((keys.size, n))
    for r in nb.prange(keys.size):
        for i in range(n):
            out[r, i] = u01(word(keys[r], start + np.uint64(i)))
    return out


@nb.njit(cache=True)
def normals_seq_array(key, pos, n):
    """n normals from the sequential stream (key, pos) (for tests); returns (z, new pos)."""
    out = np.empty(n)
    for i in range(n):
        out[i], pos = normal_seq(key, pos)
    return out, pos


@nb.njit(inline="always")
def gamma_mt(d, c, key, pos):
    """Marsaglia-Tsang Gamma(d + 1/3) for d >= 2/3, with c = 1/sqrt(9 d); returns (x, pos)."""
    while True:
        z, pos = normal_seq(key, pos)
        t = 1.0 + c * z
        if t <= 0.0:
            continue
        v = t * t * t
        uu = u01_open(word(key, pos))
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
        g, pos = gamma_mt(d, 1.0 / math.sqrt(9.0 * d), key, pos)
        return 2.0 * g, pos
    # Gamma(k) = Gamma(k + 1) U^(1/k) for shape k < 1
    boost = u01_open(word(key, pos)) ** (1.0 / k)
    pos += np.uint64(1)
    d = k + 1.0 - 1.0 / 3.0
    g, pos = gamma_mt(d, 1.0 / math.sqrt(9.0 * d), key, pos)
    return 2.0 * g * boost, pos


@nb.njit(cache=True)
def chi2_seq_array(dof, key, pos, n):
    out = np.empty(n)
    for i in range(n):
        out[i], pos = chi2_seq(dof, key, pos)
    return out, pos

