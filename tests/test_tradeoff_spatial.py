"""l_inf versus rotation-translation on the ring image: closed forms, coupling bound, Monte Carlo."""

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.special import ndtr

from simulate.tradeoff import binomial_se, ring_coupling_points, ring_mc_accuracy, sample_ring
from theory.params import ParameterError
from theory.tradeoff import Threat
from theory.tradeoff_spatial import (RingClassifier, RingModel, ring_accuracy, ring_affine_accuracy,
                                     ring_coupling_bound, ring_frontier, ring_union_accuracy)

from . import strategies_tradeoff as S

classifiers = st.builds(RingClassifier, S.weight, S.weight, st.floats(-2.0, 2.0))
shifts = st.integers(0, 3)


@given(model=S.ring_models(), clf=classifiers, e=S.budget, t=shifts, beta=S.beta)
def test_union_below_each_and_affine_between(model, clf, e, t, beta):
    ti, tr = Threat("linf", e), Threat("rt", t)
    a_inf, a_rt = ring_accuracy(model, clf, ti), ring_accuracy(model, clf, tr)
    union = ring_union_accuracy(model, clf, (ti, tr))
    aff = ring_affine_accuracy(model, clf, ti, tr, beta)
    assert 0 <= union <= min(a_inf, a_rt) + S.EXACT
    assert max(a_inf, a_rt) <= ring_accuracy(model, clf) + S.EXACT
    assert aff >= union - S.EXACT  # a convex combination of two positive margins is positive
    assert ring_affine_accuracy(model, clf, ti, tr, 1.0) == pytest.approx(a_inf, abs=S.EXACT)
    assert ring_affine_accuracy(model, clf, ti, tr, 0.0) == pytest.approx(a_rt, abs=S.EXACT)


@given(model=S.ring_models(), clf=classifiers, e1=S.budget, e2=S.budget, t=shifts)
def test_accuracy_non_increasing_in_the_budgets(model, clf, e1, e2, t):
    lo, hi = sorted((e1, e2))
    for kind in ("linf", "l1", "l2"):
        assert ring_accuracy(model, clf, Threat(kind, hi)) <= ring_accuracy(model, clf, Threat(kind, lo)) + S.EXACT
    assert ring_accuracy(model, clf, Threat("rt", t + 1)) <= ring_accuracy(model, clf, Threat("rt", t)) + S.EXACT
    assert ring_accuracy(model, clf, Threat("rt", 0)) == pytest.approx(ring_accuracy(model, clf), abs=S.EXACT)


@given(model=S.ring_models())
def test_the_two_features_are_mutually_exclusive(model):
    x0_only, weak_only = RingClassifier(1.0, 0.0, 0.0), RingClassifier(0.0, 1.0, 0.0)
    ti, tr = Threat("linf", 2 * model.eta), Threat("rt", 1)
    if 2 * model.eta < 1:
        assert ring_accuracy(model, x0_only, ti) == pytest.approx(model.p0, abs=S.EXACT)
    assert ring_accuracy(model, x0_only, tr) == 0.0
    assert ring_accuracy(model, weak_only, ti) == pytest.approx(float(ndtr(-model.a)), abs=1e-12)
    assert ring_accuracy(model, weak_only, tr) == pytest.approx(float(ndtr(model.a)), abs=1e-12)
    # the weak classifier meets the bound with equality: Phi(-a) + Phi(a) = 1
    assert ring_coupling_bound(model, 2 * model.eta, 1) == 1.0


@settings(max_examples=20)
@given(model=S.ring_models(d=st.integers(2, 20)), clf=classifiers, e=S.budget, t=shifts, beta=S.beta,
       seed=st.integers(0, 2**32 - 1))
def test_closed_forms_agree_with_monte_carlo(model, clf, e, t, beta, seed):
    rng = np.random.default_rng(seed)
    n = 4000
    y, x0, x = sample_ring(model, n, rng)
    assert np.allclose(x @ model.s / model.d, x0)  # the robust feature is read exactly
    u = clf.pixel_weights(model)
    score = lambda z: clf.score(model, z)  # noqa: E731
    ti, tr = Threat("linf", e), Threat("rt", t)
    pairs = [
        (ring_accuracy(model, clf), "clean"), (ring_accuracy(model, clf, ti), "linf"),
        (ring_accuracy(model, clf, tr), "rt"), (ring_union_accuracy(model, clf, (ti, tr)), "union"),
        (ring_affine_accuracy(model, clf, ti, tr, beta), "affine"),
    ]
    for theory, mode in pairs:
        mc = float(np.mean(ring_mc_accuracy(score, y, x, eps_inf=e, u=u, t=t, mode=mode, beta=beta)))
        assert abs(mc - theory) <= S.Q_MC * binomial_se(theory, n) + 1e-12, (mode, mc, theory)


@settings(max_examples=20)
@given(model=S.ring_models(d=st.integers(2, 20)), e=S.budget, seed=st.integers(0, 2**32 - 1),
       kind=st.sampled_from(["tree", "relu_net", "phase"]))
@example(model=RingModel(d=20, a=2.0, p0=0.95), e=2 * 2 / math.sqrt(20), seed=3, kind="relu_net")
def test_coupling_bound_holds_for_nonlinear_classifiers(model, e, seed, kind):
    rng = np.random.default_rng(seed)
    f = _nonlinear(kind, model, rng)
    n = 5000
    y, _, x = sample_ring(model, n, rng)
    x_inf, x_rt = ring_coupling_points(model, y, x, e)
    assert np.max(np.abs(x_inf - x)) <= e + 1e-12
    acc_i, acc_r = float(np.mean(f(x_inf) == y)), float(np.mean(f(x_rt) == y))
    se = math.hypot(binomial_se(acc_i, n), binomial_se(acc_r, n))
    assert acc_i + acc_r <= ring_coupling_bound(model, e, 1) + S.Q_MC * se


def _nonlinear(kind, model, rng):
    s, d = model.s, model.d
    if kind == "tree":
        return lambda x: np.where(np.abs(x.sum(1) / math.sqrt(d)) > 1, np.sign(x.sum(1)), np.sign(x @ s + 1e-300))
    if kind == "phase":  # uses the local pattern at two pixels, a nonlinear read-out of the phase
        return lambda x: np.sign((x[:, 0] - x[:, 1]) * np.abs(x[:, 2] - x[:, 3]) + 0.3 * x.mean(1) * math.sqrt(d))
    W1 = rng.standard_normal((d, 8))
    w2 = rng.standard_normal(8)
    return lambda x: np.sign(np.maximum(x @ W1, 0) @ w2 - 0.05)


def test_frontier_and_bounds():
    model = RingModel(d=200, a=2.0, p0=0.95)
    fr = ring_frontier(model, Threat("linf", 2 * model.eta), Threat("rt", 1), n_theta=181, n_psi=91)
    assert fr.best_sum <= 1.0 + S.EXACT and fr.best_union == pytest.approx(0.5, abs=S.EXACT)
    assert fr.best_inf == pytest.approx(model.p0, abs=S.EXACT)
    assert fr.best_rt >= float(ndtr(model.a)) - S.GRID  # the weak-only direction lies between grid points
    ok = np.isfinite(fr.F)
    assert np.all(np.diff(fr.F[ok]) <= S.EXACT) and np.all(fr.F[ok] <= fr.envelope[ok] + S.EXACT)
    assert ring_coupling_bound(model, 0.0, 1) == pytest.approx(2 * float(ndtr(model.a)))
    assert ring_coupling_bound(model, 0.1, 0) == 2.0


@pytest.mark.parametrize("kwargs", [dict(d=3), dict(d=0), dict(a=-1.0), dict(p0=-0.1)])
def test_invalid_models_are_rejected(kwargs):
    with pytest.raises(ParameterError):
        RingModel(**kwargs)


def test_invalid_threats_are_rejected():
    with pytest.raises(ParameterError, match="whole number"):
        Threat("rt", 1.5)
    with pytest.raises(ParameterError, match="rt threat"):
        ring_affine_accuracy(RingModel(), RingClassifier(1, 1), Threat("rt", 1), Threat("linf", 1), 0.5)
