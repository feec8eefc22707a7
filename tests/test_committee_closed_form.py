"""The drift without the attack in closed form (theory.committee.closed_form, the rule "exact") against two
independent routes: the bivariate normal distribution function by scipy's Genz integration, and the Gauss-Hermite
product rules of the drift on random states at K = 2, 3, 4 (the closed form within the quadrature's stated error,
which is far below the closed form's distance to a deliberately wrong variant)."""

import numpy as np
import pytest
from scipy import stats

from theory.committee import CommitteeParams, drift, drift_error, pack
from theory.committee.closed_form import bivariate_normal_cdf, expect_erf, expect_erf_erf
from theory.params import ParameterError

from .test_committee_quadrature import _kernel, random_state
from .tolerances import COMMITTEE_BVN_VS_GENZ, COMMITTEE_EXACT_VS_QUADRATURE


def test_bivariate_normal_cdf_against_genz():
    """Owen's-T formula against scipy.stats.multivariate_normal.cdf (Genz's algorithm at abseps 1e-12), on random
    (h, k, r) and the branches h = 0, k = 0, h k < 0, r near +-1."""
    rng = np.random.default_rng(7)
    pts = [(0.0, 0.7, -0.3), (0.0, 0.0, 0.5), (-1.2, 0.0, 0.9), (0.3, -0.5, 0.4), (2.0, 3.0, -0.95), (-2.5, -0.1, 0.99)]
    pts += [tuple(x) for x in np.column_stack([rng.normal(0, 1.5, 20), rng.normal(0, 1.5, 20), rng.uniform(-0.99, 0.99, 20)])]
    for h, k, r in pts:
        ref = stats.multivariate_normal(mean=[0, 0], cov=[[1, r], [r, 1]], abseps=1e-12, releps=1e-12).cdf([h, k])
        assert abs(bivariate_normal_cdf(h, k, r) - ref) < COMMITTEE_BVN_VS_GENZ, (h, k, r)


def test_erf_moments_against_gauss_hermite():
    """E[erf x] and E[erf x erf y] against a 2-D Gauss-Hermite grid of 200 nodes per dimension."""
    t, w = np.polynomial.hermite_e.hermegauss(200)
    w = w / w.sum()
    for mx, my, cxx, cyy, cxy in [(0.3, -0.7, 0.5, 1.2, 0.4), (0.0, 0.0, 1.0, 1.0, -0.99), (1.5, 0.2, 0.1, 2.0, 0.3)]:
        L = np.linalg.cholesky([[cxx, cxy], [cxy, cyy]])
        z1, z2 = np.meshgrid(t, t, indexing="ij")
        x, y = mx + L[0, 0] * z1, my + L[1, 0] * z1 + L[1, 1] * z2
        W = np.outer(w, w)
        from scipy.special import erf

        assert abs(expect_erf(mx, cxx) - np.sum(W * erf(x))) < COMMITTEE_BVN_VS_GENZ
        assert abs(expect_erf_erf(mx, my, cxx, cyy, cxy) - np.sum(W * erf(x) * erf(y))) < COMMITTEE_BVN_VS_GENZ


# (K, preset, Gauss-Hermite rule, sums of |v_k|): the product rule's stated error (twice its change against the
# rule with 1.5x the nodes per dimension) is 1e-9 .. 1e-7 of the drift on these states
CASES = [(2, "talk", "gh:96", (1.0, 2.0)), (3, "xor", "gh:32", (1.0, 0.6)), (4, "xor", "gh:24", (1.0, 2.0))]


@pytest.mark.parametrize("K, preset, rule, v_sums", CASES)
def test_exact_within_the_product_rules_error(K, preset, rule, v_sums):
    """|exact - gh| <= gh's stated error + exact's rounding bound + COMMITTEE_EXACT_VS_QUADRATURE max|drift| on
    random states (a nearly antiparallel pair of units among them); a deliberately wrong closed form (the cluster
    variances off by 2 %) is farther from the quadrature than that bound: the test tells them apart."""
    rng = np.random.default_rng(200 + K)
    p = CommitteeParams(preset=preset, K=K, eta_w=0.3, eta_b=0.3, eps=0.0)
    wrong = p.replace(v1=p.v1 * 1.02, v2=p.v2 * 1.02)
    states = [random_state(K, p.D, rng, s) for s in v_sums]
    W = rng.standard_normal((K, K + p.D + 3))  # units 0 and 1 nearly antiparallel: Q_01 about -0.999
    W[1] = -W[0] + 0.045 * np.linalg.norm(W[0]) * rng.standard_normal(W.shape[1]) / np.sqrt(W.shape[1])
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    states.append(states[0]._replace(Q=W @ W.T, R=W[:, :p.D].copy()))
    for st in states:
        y, err = drift_error(st, p)
        assert np.max(err) < 1e-10 * np.max(np.abs(y))  # rounding: far below the 1e-6 of the goal
        yq, errq = drift_error(st, p, rule, backend=_kernel())
        bound = errq + err + COMMITTEE_EXACT_VS_QUADRATURE * np.max(np.abs(yq))
        gap = np.abs(y - yq)
        assert np.all(gap <= bound), f"K={K}: worst |gap| {gap.max():.3g}, bound {bound[np.argmax(gap / bound)]:.3g}"
        assert np.max(errq) < 1e-4 * np.max(np.abs(yq))  # 1e-9 .. 2e-5 relative on these states
        bad = pack(drift(st, wrong, "exact"))
        assert np.any(np.abs(bad - yq) > bound)


def test_exact_needs_eps_zero():
    p = CommitteeParams(preset="xor", K=3, eps=0.3)
    with pytest.raises(ParameterError, match="eps = 0"):
        drift(p.initial_state(), p, "exact")
    # the deliberately wrong variant without the attack in the average is the attack-free drift
    y = pack(drift(p.initial_state(), p, "exact", attack_in_average=False))
    assert np.max(np.abs(y - pack(drift(p.initial_state(), p.replace(eps=0.0), "exact")))) < 1e-15


def test_command_refuses_exact_with_the_attack(capsys):
    """--rule exact with --eps > 0: one line naming the flag, exit status 2."""
    from simulate.committee import main

    with pytest.raises(SystemExit) as exc:
        main(["--preset", "xor", "--K", "3", "--eps", "0.5", "--rule", "exact", "--alpha-max", "1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--rule" in err[0] and "--eps 0" in err[0]
