"""Large-N Monte Carlo checks (opt in with -m slow): the same checks as tests/test_mc.py at larger N.

Tolerances as in tests/test_mc.py (simulate.compare.TOLERANCES; KS at Bonferroni level 1e-3).
"""

import math

import numpy as np
import pytest
from scipy import stats

from simulate.compare import check
from simulate.ode import integrate
from theory import Params

pytest.importorskip("numba", reason="numba is needed for the Monte Carlo engine")
from simulate.mc import run_mc  # noqa: E402

from .test_mc import ALPHAS12, _assert_inverse_sqrt_scaling, _ks_matrix, _spread  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("p", [Params(), Params(prior=0.7, eps=0.0, loss="cross_entropy")], ids=["talk1", "ce"])
def test_reduced_engine_has_the_law_of_the_full_engine_N1000(p):
    alphas = [0.0, 2.0, 5.0, 10.0]
    full = run_mc(p, 1000, 200, alphas, seed=41, engine="full", progress=False)
    red = run_mc(p, 1000, 2000, alphas, seed=42, engine="reduced", progress=False)
    pv = _ks_matrix(full, red, [1, 2, 3])
    assert min(pv.values()) > 1e-3 / len(pv), pv


def test_full_engine_agrees_with_ode_N1000():
    res = run_mc(Params(), 1000, 64, ALPHAS12, seed=43, engine="full", progress=False)
    cmp = check(integrate(res.params, res.alpha, eps_test=res.eps_test), res)
    assert cmp.passed, "\n".join(cmp.failures())
    wrong = integrate(res.params.replace(eta_w=0.044), res.alpha, eps_test=res.eps_test)
    assert not check(wrong, res).passed


def test_reduced_engine_approaches_the_ode_at_N1e5():
    res = run_mc(Params(prior=0.7), 100_000, 48, [0, 10, 20, 50], seed=44, engine="reduced", progress=False)
    cmp = check(integrate(res.params, res.alpha, eps_test=res.eps_test), res)
    assert cmp.passed, "\n".join(cmp.failures())


def test_full_engine_spread_shrinks_like_inverse_sqrt_N():
    replicas = 200
    _assert_inverse_sqrt_scaling(_spread("full", (250, 1000, 4000), replicas, 2.0, 45), replicas)


def test_full_engine_at_N1e4_runs_and_matches_reduced_in_mean():
    p = Params()
    full = run_mc(p, 10_000, 8, [0.0, 1.0, 2.0], seed=46, engine="full", progress=False)
    red = run_mc(p, 10_000, 512, [0.0, 1.0, 2.0], seed=47, engine="reduced", progress=False)
    for q in ("R", "b"):
        d = full.mean(q)[-1] - red.mean(q)[-1]
        se = math.hypot(full.se(q)[-1], red.se(q)[-1])
        assert abs(d) < 4 * se, (q, d, se)
    assert stats.ks_2samp(full.R[-1], red.R[-1]).pvalue > 1e-3
    assert np.all(np.isfinite(full.E))
