"""Random numbers and scalar functions of the Monte Carlo kernels (simulate.kernels.rng, simulate.kernels.special).

Statistical tests use fixed seeds; each p-value threshold is stated with the number of tests it covers.
"""

import math

import numpy as np
import pytest
from scipy import special, stats

from theory.ode import loss_derivative

K = pytest.importorskip("simulate.kernels.rng", reason="numba is needed for the Monte Carlo engine")
SP = pytest.importorskip("simulate.kernels.special", reason="numba is needed for the Monte Carlo engine")

MASK = (1 << 64) - 1


def splitmix64_reference(seed: int, n: int) -> list[int]:
    """S. Vigna's reference splitmix64.c, transcribed into Python integers."""
    x, out = seed, []
    for _ in range(n):
        x = (x + 0x9E3779B97F4A7C15) & MASK
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        out.append(z ^ (z >> 31))
    return out


def test_splitmix64_matches_reference_and_published_values():
    # published first outputs of splitmix64.c: seed 0 -> 0xE220A8397B1DCDAF; seed 1234567 -> 6457827717110365317,
    # 3203168211198807973
    assert splitmix64_reference(0, 1) == [0xE220A8397B1DCDAF]
    assert splitmix64_reference(1234567, 2) == [6457827717110365317, 3203168211198807973]
    for seed in (0, 1234567, 2**63 + 12345):
        # word n of the stream keyed by `seed` is output n of the reference generator seeded with `seed`
        got = K.stream_words(np.uint64(seed), np.uint64(1), 1000)
        assert [int(v) for v in got] == splitmix64_reference(seed, 1000)


def _counter_normals(n, key, start=0, ex_key=99):
    out = np.empty(n)
    ep = K.normals_counter(out, np.empty(n, np.uint64), np.empty(n, np.uint64), np.empty(n, np.int64),
                           np.uint64(key), np.uint64(start), np.uint64(ex_key), np.uint64(0))
    return out, int(ep)


# 6 KS tests below at level 1e-4 each: a false alarm with probability < 1e-3
@pytest.mark.parametrize("kind", ["counter", "sequential"])
def test_ziggurat_normals_are_standard_normal(kind):
    n = 400_000
    if kind == "counter":
        z, _ = _counter_normals(n, key=12345)
    else:
        z, _ = K.normals_seq_array(np.uint64(777), np.uint64(0), n)
    assert stats.kstest(z, "norm").pvalue > 1e-4
    # mean and variance within 5 standard errors
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / n)
    # the tail beyond r = 3.654 (its own code path): count within 5 Poisson standard deviations
    expected = n * 2 * stats.norm.sf(K.ZIG_X[1])
    assert abs(np.sum(np.abs(z) > K.ZIG_X[1]) - expected) < 5 * math.sqrt(expected)
    # a region served by the wedges near 0 < |z| < 0.3 and the last layers
    for lo, hi in ((0.0, 0.3), (2.0, 3.0), (3.0, 5.0)):
        pr = 2 * (stats.norm.cdf(hi) - stats.norm.cdf(lo))
        cnt = np.sum((np.abs(z) >= lo) & (np.abs(z) < hi))
        assert abs(cnt - n * pr) < 5 * math.sqrt(n * pr * (1 - pr)), (lo, hi)


def test_counter_normals_are_deterministic_and_keyed():
    a, ea = _counter_normals(10_000, key=5, start=3 * 16384)
    b, eb = _counter_normals(10_000, key=5, start=3 * 16384)
    c, _ = _counter_normals(10_000, key=6, start=3 * 16384)
    d, _ = _counter_normals(10_000, key=5, start=4 * 16384)
    assert np.array_equal(a, b) and ea == eb and ea > 0  # some draws needed the extra stream
    assert not np.any(a == c) and not np.any(a == d)
    # normals of consecutive windows are uncorrelated
    assert abs(np.corrcoef(a, d)[0, 1]) < 5 / math.sqrt(a.size)


@pytest.mark.parametrize("dof", [1, 3, 998])
def test_chi2_sampler(dof):
    x, _ = K.chi2_seq_array(dof, np.uint64(2024 + dof), np.uint64(0), 100_000)
    assert stats.kstest(x, "chi2", args=(dof,)).pvalue > 1e-4


def test_chi2_zero_dof_is_zero():
    x, pos = K.chi2_seq_array(0, np.uint64(1), np.uint64(5), 3)
    assert np.all(x == 0) and pos == 5


def test_uniform_streams_shape_and_range():
    keys = np.array([1, 2, 3], dtype=np.uint64)
    u = K.stream_uniforms(keys, np.uint64(10), 50_000)
    assert u.shape == (3, 50_000) and u.min() >= 0 and u.max() < 1
    assert stats.kstest(u[0], "uniform").pvalue > 1e-4
    assert np.array_equal(u[:, 5:], K.stream_uniforms(keys, np.uint64(15), 50_000 - 5))


def test_erfcx_matches_scipy():
    x = np.concatenate([np.linspace(-26, 30, 4001), np.geomspace(30, 1e8, 200)])
    ours = np.array([SP.erfcx(v) for v in x])
    np.testing.assert_allclose(ours, special.erfcx(x), rtol=5e-14, atol=0)


@pytest.mark.parametrize("loss,code", [("quadratic", 0), ("cross_entropy", 1)])
@pytest.mark.parametrize("tau", [1.0, -1.0])
@pytest.mark.parametrize("s", [1.0, math.sqrt(2.0), 0.3])
def test_kernel_loss_derivative_is_the_theory_one(loss, code, tau, s):
    # the same delta = dL/dx as the ODE; relative 1e-12 (erfcx via exp(x^2) erfc(x) loses ~x^2 ulp),
    # absolute 1e-300 where both underflow
    x = np.concatenate([np.linspace(-30, 30, 3001), [-1e4, 1e4, 0.0]])
    np.testing.assert_allclose(SP.dloss_array(x, tau, code, s), loss_derivative(x, tau, loss, s),
                               rtol=1e-12, atol=1e-300)
