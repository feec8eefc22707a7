"""The bridge: l_inf / l_1 errors of the Gaussian-mixture classifier, limits and Monte Carlo at finite N."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulate.tradeoff import bridge_mc_error, bridge_vectors
from theory import Params, adversarial_error
from theory.bridge import (effective_budget, evaluate_state, expected_l1_norm, expected_linf_norm, l1_budget_scale,
                           l1_norm_limit, lp_adversarial_error)
from theory.params import ParameterError

from . import strategies as st_
from .strategies_tradeoff import Q_MC

R_values = st.floats(-1.0, 1.0)


@given(R=R_values, kappa=st.floats(0.05, 1.0))
def test_l1_norm_limits(R, kappa):
    sig = math.sqrt(1 - R * R)
    assert l1_norm_limit(R, "aligned") == pytest.approx(sig * math.sqrt(2 / math.pi), abs=1e-12)
    spread = l1_norm_limit(R, "spread")
    assert l1_norm_limit(R, "sparse", kappa) >= l1_norm_limit(R, "aligned") - 1e-12
    assert l1_norm_limit(R, "sparse", kappa) <= spread + 1e-12  # concentrating B lowers ||w||_1
    assert l1_norm_limit(R, "sparse", 1.0) == pytest.approx(spread, abs=1e-12)
    # ||w||_2 = 1 <= ||w||_1/sqrt(N)*sqrt(N) and Cauchy-Schwarz: ||w||_1 <= sqrt(N)
    assert spread <= 1 + 1e-12


def test_l1_norm_limit_special_values():
    assert l1_norm_limit(1.0, "spread") == pytest.approx(1.0)
    assert l1_norm_limit(0.0, "spread") == pytest.approx(math.sqrt(2 / math.pi))
    assert l1_norm_limit(1.0, "aligned") == 0.0


@pytest.mark.parametrize("structure", ["aligned", "spread"])
@pytest.mark.parametrize("R", [0.3, 0.9])
def test_realised_norms_match_expectations_and_converge(structure, R):
    """Realised ||w||_1/sqrt N and ||w||_inf vs the finite-N expectations (tolerance: 6 sd over replicas),
    and the finite-N l_inf drop approaches the limit."""
    rng = np.random.default_rng(11)
    N = 4000
    l1, linf = [], []
    for _ in range(40):
        _, w = bridge_vectors(N, R, structure, rng)
        l1.append(np.abs(w).sum() / math.sqrt(N))
        linf.append(np.abs(w).max())
    l1, linf = np.array(l1), np.array(linf)
    tol1 = 6 * l1.std(ddof=1) / math.sqrt(l1.size) + 2.0 / N  # O(1/N): Gaussian coordinates vs the sphere
    assert abs(l1.mean() - expected_l1_norm(R, N, structure) / math.sqrt(N)) <= tol1
    tolinf = 6 * linf.std(ddof=1) / math.sqrt(linf.size) + 2.0 / N
    assert abs(linf.mean() - expected_linf_norm(R, N, structure)) <= tolinf
    assert abs(expected_l1_norm(R, N, structure) / math.sqrt(N) - l1_norm_limit(R, structure)) <= 2.0 / math.sqrt(N)
    if structure == "aligned":
        assert expected_linf_norm(R, N, "aligned") == pytest.approx(R, abs=1e-9)  # B's coordinate wins


def test_l1_spread_drop_converges_slowly_to_sigma():
    R = 0.6
    vals = [effective_budget("l1", 1.0, R, "spread", N=N) for N in (10**2, 10**4, 10**6)]
    gaps = [abs(v - 0.8) for v in vals]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.1


@settings(max_examples=6)
@given(p=st_.params(), R=st.floats(0.0, 1.0), b=st.floats(-1.0, 1.0), structure=st.sampled_from(["aligned", "spread"]),
       threat=st.sampled_from(["linf", "l1"]), eps_hat=st.floats(0.1, 2.0), seed=st.integers(0, 2**32 - 1))
def test_monte_carlo_at_finite_N(p, R, b, structure, threat, eps_hat, seed):
    """MC with sampled inputs and explicit perturbation vectors vs the formula at the realised norms
    (within Q_MC binomial SE), and vs the large-N limit (adding the norm fluctuation of one w)."""
    N, n = 400, 4000
    eps = eps_hat / math.sqrt(N) if threat == "linf" else (eps_hat if structure == "aligned"
                                                           else eps_hat * l1_budget_scale(N))
    mc = bridge_mc_error(p, R, b, N, structure, threat, eps, n, np.random.default_rng(seed))
    norm = mc["l1"] if threat == "linf" else mc["linf"]
    exact = float(adversarial_error(mc["R"], b, eps * norm, p))
    assert abs(mc["error"] - exact) <= Q_MC * mc["se"], (mc, exact)


def test_monte_carlo_against_the_limit_for_linf():
    """l_inf with B spread: the limit formula predicts the finite-N Monte Carlo (N = 2000)."""
    p = Params(rho=2.0, eps=1.0)
    R, b, N, n = 0.8, 0.1, 2000, 6000
    lim = lp_adversarial_error(R, b, p, "linf", 1.0, "spread")
    mc = bridge_mc_error(p, R, b, N, "spread", "linf", 1.0 / math.sqrt(N), n, np.random.default_rng(5))
    # norm fluctuation of one w: sd(|R b + sigma g|)/sqrt(N) ~ 0.6/sqrt(N) in Delta, times the density <= 0.4
    assert abs(mc["error"] - lim) <= Q_MC * mc["se"] + 0.4 * 6 * 0.6 / math.sqrt(N)
    wrong = float(adversarial_error(R, b, 1.0, p))  # forgetting the dual norm (treating it as l2, Delta = eps_hat)
    assert abs(mc["error"] - wrong) > Q_MC * mc["se"] + 0.4 * 6 * 0.6 / math.sqrt(N)


@given(p=st_.params(), R=st.floats(-1, 1), b=st_.b, e=st.floats(0, 2))
def test_evaluate_state_is_consistent(p, R, b, e):
    out = evaluate_state(R, b, p, eps_l2=e, eps_inf_hat=e, eps_1_hat=e, structure="aligned")
    assert out["E"] <= out["S_l2"] + 1e-12 and out["E"] <= out["S_linf"] + 1e-12 and out["E"] <= out["S_l1"] + 1e-12
    assert out["Delta_l1"] == pytest.approx(e * abs(R))


@pytest.mark.parametrize("call", [
    lambda: l1_norm_limit(1.5),
    lambda: l1_norm_limit(0.5, "diagonal"),
    lambda: l1_norm_limit(0.5, "sparse", 0.0),
    lambda: effective_budget("l3", 1.0, 0.5),
    lambda: effective_budget("linf", -1.0, 0.5),
])
def test_invalid_inputs(call):
    with pytest.raises(ParameterError):
        call()
