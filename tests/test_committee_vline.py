"""The transversal line rule "vline:M" (theory.committee.quadrature.vline_nodes), a deterministic reference for
the drift with the attack where the integrand jumps: within its stated error of the unbiased randomised rule."""

import numpy as np
import pytest
from scipy import stats

from theory.committee import CommitteeParams, State, drift, drift_error, pack
from theory.linear.params import ParameterError

from .test_committee_quadrature import _kernel, random_state
from .tolerances import COMMITTEE_QUAD_FAMILY_LEVEL


def _q(blocks: int, m: int) -> float:
    """Student's t quantile (blocks - 1 degrees of freedom), Sidak-corrected over m entries at the family-wise
    level COMMITTEE_QUAD_FAMILY_LEVEL."""
    return stats.t.ppf(1 - (1 - (1 - COMMITTEE_QUAD_FAMILY_LEVEL) ** (1 / m)) / 2, blocks - 1)


@pytest.mark.parametrize("K, M", [(2, 5), (3, 4)])
def test_vline_within_its_stated_error_of_the_randomised_rule(K, M):
    """FGSM with sum |v_k| = 2 (sigma = tau inside the clusters: the integrand jumps), random states:
    |vline:M - rqmc:13:16| <= the stated error of vline:M (twice its change against vline:(M + 2)) + q se of the
    randomised rule (M = 4 at K = 3: a third of the nodes of M = 5, its stated error still below the se)."""
    rng = np.random.default_rng(300 + K)
    p = CommitteeParams(preset="xor", K=K, eta_w=0.3, eta_b=0.3, eps=0.5)
    fast = _kernel()
    states = [random_state(K, p.D, rng, 2.0) for _ in range(2)]
    m = len(pack(states[0])) * len(states)
    for st in states:
        y, err = drift_error(st, p, f"vline:{M}", backend=fast)
        ref, se = drift_error(st, p, "rqmc:13:16", backend=fast)
        gap, bound = np.abs(y - ref), err + _q(16, m) * se + 1e-12
        assert np.all(gap <= bound), (gap.max(), bound[np.argmax(gap / bound)], np.abs(ref).max())
        assert err.max() < se.max(), (err.max(), se.max())


def test_vline_needs_a_positive_definite_overlap():
    p = CommitteeParams(preset="xor", K=2, eps=0.5)
    st = p.initial_state()
    Q = np.ones((2, 2))
    with pytest.raises(ParameterError, match="positive definite"):
        drift(State(Q, st.R, st.b, np.array([1.0, 1.0])), p, "vline:3")
    with pytest.raises(ParameterError, match="vline"):
        drift(st, p, "vline:1")


@pytest.mark.parametrize("q, v", [(-0.87, (1.0, 1.0)), (0.6, (1.0, 0.7))])
def test_vline_converges_fast_across_the_transitions_between_units(q, v):
    """K = 2: the attack direction passes from w_1 to w_2 in thin layers around lambda_1 = +-lambda_2 (sharp at
    Q_12 = -0.87 with v = (1, 1), where v_1 w_1 and v_2 w_2 nearly cancel; milder at Q_12 = 0.6).  With its panels
    graded toward both planes, vline:8 states an error below 1e-8 (its change against vline:10; without the
    grading that change is 1e-6 to 1e-5), and it agrees with the unbiased rqmc:15:16 within its stated error +
    the Sidak t quantile times the randomised rule's standard error."""
    rng = np.random.default_rng(0)
    p = CommitteeParams(preset="xor", K=2, eta_w=0.5, eta_b=0.2, eps=0.5, v0=v)
    fast = _kernel()
    st = State(np.array([[1.0, q], [q, 1.0]]), rng.normal(0, 0.5, (2, 2)), rng.normal(0, 0.3, 2), np.array(v))
    y, err = drift_error(st, p, "vline:8", backend=fast)
    assert err.max() < 1e-8, err.max()
    ref, se = drift_error(st, p, "rqmc:15:16", backend=fast)
    gap, bound = np.abs(y - ref), err + _q(16, len(y)) * se + 1e-12
    assert np.all(gap <= bound), (gap.max(), bound[np.argmax(gap / bound)])
