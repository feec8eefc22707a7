"""l_inf versus l_1: closed forms, union / affine ordering, coupling bound, frontier, Monte Carlo."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.special import ndtr

from simulate.tradeoff import binomial_se, lp_coupling_points, lp_mc_accuracy, lp_worst_perturbation, sample_lp
from theory.params import ParameterError
from theory.tradeoff import Threat, concave_envelope, pareto_frontier
from theory.tradeoff_lp import (LinearClassifier, LpModel, accuracy_at_drop, affine_accuracy,
                                best_union_accuracy_all_classifiers, clean_accuracy, coupling_bound,
                                coupling_budget_threshold, frontier, margin_drop, robust_accuracy,
                                union_accuracy)

from . import strategies_tradeoff as S

KINDS = ("linf", "l1", "l2")


def _threats(e_inf, e_1, e_2):
    return Threat("linf", e_inf), Threat("l1", e_1), Threat("l2", e_2)


# ------------------------------------------------------------------------------- closed-form properties
@given(data=st.data(), model=S.lp_models(), e=st.tuples(S.budget, S.budget, S.budget))
def test_union_is_below_each_threat_and_accuracy_is_a_probability(data, model, e):
    clf = data.draw(S.linear_classifiers(model.d))
    threats = _threats(*e)
    single = [robust_accuracy(model, clf, t) for t in threats]
    union = union_accuracy(model, clf, threats)
    assert all(0.0 <= x <= 1.0 for x in single + [union])
    assert union <= min(single) + S.EXACT
    assert union == pytest.approx(min(single), abs=S.EXACT)  # deterministic drops: the union is the worst one
    assert max(single) <= clean_accuracy(model, clf) + S.EXACT


@given(data=st.data(), model=S.lp_models(), kind=st.sampled_from(KINDS), e1=S.budget, e2=S.budget,
       x0_moves=st.booleans())
def test_accuracy_is_non_increasing_in_each_budget(data, model, kind, e1, e2, x0_moves):
    clf = data.draw(S.linear_classifiers(model.d))
    lo, hi = sorted((e1, e2))
    assert (robust_accuracy(model, clf, Threat(kind, hi), x0_moves)
            <= robust_accuracy(model, clf, Threat(kind, lo), x0_moves) + S.EXACT)


@given(data=st.data(), model=S.lp_models(), ka=st.sampled_from(KINDS), kb=st.sampled_from(KINDS),
       ea=S.budget, eb=S.budget, beta=S.beta)
@example(data=None, model=LpModel(d=200, a=2, p0=0.95), ka="linf", kb="l1", ea=2 * 2 / math.sqrt(200), eb=2.0,
         beta=0.5).via("the paper's budgets")
def test_affine_combination_is_never_stronger_than_the_union(data, model, ka, kb, ea, eb, beta):
    clf = (LinearClassifier.symmetric(model.d, 1.0, 1.0, 0.1) if data is None
           else data.draw(S.linear_classifiers(model.d)))
    ta, tb = Threat(ka, ea), Threat(kb, eb)
    aff = affine_accuracy(model, clf, ta, tb, beta)
    assert aff >= union_accuracy(model, clf, (ta, tb)) - S.EXACT
    # closed form in beta: equation (1) at the interpolated drop; the end points are the single threats
    # (the interpolation in exact rational arithmetic, rounded once: it lies between the two float end points)
    drop = float(Fraction(beta) * Fraction(margin_drop(clf, ta)) + (1 - Fraction(beta)) * Fraction(margin_drop(clf, tb)))
    assert aff == pytest.approx(float(accuracy_at_drop(model, clf, drop)), abs=S.EXACT)
    assert affine_accuracy(model, clf, ta, tb, 1.0) == pytest.approx(robust_accuracy(model, clf, ta), abs=S.EXACT)
    assert affine_accuracy(model, clf, ta, tb, 0.0) == pytest.approx(robust_accuracy(model, clf, tb), abs=S.EXACT)



def test_affine_combination_at_a_margin_tie_is_not_stronger_than_the_union():
    """Two equal l_inf balls and a classifier whose margin ties the drop exactly: beta e + (1 - beta) e rounds
    one ulp above e in floating point, which must not flip the affine accuracy below the union's."""
    model = LpModel(d=1, a=1.0, p0=1.0)
    w0, beta = 1.2883192254392675, 0.8217622708517057
    clf = LinearClassifier(w0, np.zeros(1), 3.2e-282)
    t = Threat("linf", 1.0)
    assert beta * w0 + (1 - beta) * w0 > w0  # the rounding this guards against
    assert affine_accuracy(model, clf, t, t, beta) >= union_accuracy(model, clf, (t, t)) == 0.5


@given(model=S.lp_models(d=st.integers(1, 400)))
def test_single_feature_classifiers_match_their_exact_values(model):
    e_inf = 2 * model.eta
    x0_only = LinearClassifier(1.0, np.zeros(model.d), 0.0)
    weak_only = LinearClassifier.symmetric(model.d, 0.0, 1.0, 0.0)
    # l_inf of size 2 eta cannot flip x0 (when 2 eta < 1) but moves the weak features onto the other class
    if e_inf < 1:
        assert robust_accuracy(model, x0_only, Threat("linf", e_inf)) == pytest.approx(model.p0, abs=S.EXACT)
    assert robust_accuracy(model, x0_only, Threat("l1", 2.0)) == 0.0
    assert robust_accuracy(model, weak_only, Threat("linf", e_inf)) == pytest.approx(float(ndtr(-model.a)), abs=1e-12)
    assert robust_accuracy(model, weak_only, Threat("l1", 2.0)) == pytest.approx(
        float(ndtr(model.a - 2 / math.sqrt(model.d))), abs=1e-12)


# ------------------------------------------------------------------------------- coupling bound
@given(model=S.lp_models(), e_inf=S.budget, e_1=S.budget)
def test_coupling_bound_is_monotone_and_exact_at_the_paper_budgets(model, e_inf, e_1):
    b = coupling_bound(model, e_inf, e_1)
    assert 1.0 - S.EXACT <= b <= 2.0
    assert coupling_bound(model, e_inf * 1.5 + 0.01, e_1 * 1.5 + 0.01) <= b + S.EXACT
    assert coupling_bound(model, 2 * model.eta, 2.0) == 1.0
    assert coupling_bound(model, 2 * model.eta, coupling_budget_threshold(model, 2 * model.eta)) == 1.0
    lo, hi = best_union_accuracy_all_classifiers(model, 2 * model.eta, 2.0)
    assert lo == hi == 0.5


@settings(max_examples=25)
@given(model=S.lp_models(d=st.integers(2, 40)), e_inf=S.budget, e_1=S.budget, seed=st.integers(0, 2**32 - 1),
       kind=st.sampled_from(["tree", "cubic", "relu_net", "threshold_x0"]))
@example(model=LpModel(d=20, a=2.0, p0=0.95), e_inf=2 * 2 / math.sqrt(20), e_1=2.0, seed=1, kind="relu_net")
def test_coupling_bound_holds_for_nonlinear_classifiers(model, e_inf, e_1, seed, kind):
    """Monte Carlo at the points the proof constructs: acc_inf(point) + acc_1(point) <= bound + q SE."""
    rng = np.random.default_rng(seed)
    f = _nonlinear(kind, model.d, rng)
    n = 6000
    y, x0, xw = sample_lp(model, n, rng)
    (x0i, xwi), (x01, xw1), ninf, n1 = lp_coupling_points(model, y, x0, xw, e_inf, e_1)
    assert ninf <= e_inf * (1 + 1e-12) + 1e-12 and n1 <= e_1 * (1 + 1e-12) + 1e-12  # inside the balls
    acc_i = float(np.mean(f(x0i, xwi) == y))
    acc_1 = float(np.mean(f(x01, xw1) == y))
    se = math.hypot(binomial_se(acc_i, n), binomial_se(acc_1, n))
    assert acc_i + acc_1 <= coupling_bound(model, e_inf, e_1) + S.Q_MC * se


def test_coupling_bound_is_needed_below_the_budgets():
    """Power check: below 2 eta the sum can exceed 1, and the bound (then > 1) still holds."""
    model = LpModel(d=100, a=3.0, p0=0.9)
    weak = LinearClassifier.symmetric(model.d, 0.0, 1.0, 0.0)
    s = robust_accuracy(model, weak, Threat("linf", 0.0)) + robust_accuracy(model, weak, Threat("l1", 2.0))
    assert s > 1.5
    assert s <= coupling_bound(model, 0.0, 2.0)


def _nonlinear(kind, d, rng):
    sd = math.sqrt(d)
    if kind == "tree":  # trust x0 unless the weak evidence is strong
        return lambda x0, xw: np.where(np.abs(xw.sum(1) / sd) > 1.0, np.sign(xw.sum(1)), np.sign(x0 + 1e-300))
    if kind == "cubic":
        return lambda x0, xw: np.sign(np.tanh(3 * x0) + 0.4 * (xw.sum(1) / sd) ** 3 - 0.1)
    if kind == "threshold_x0":  # reads x0 by rounding, ignoring small moves
        return lambda x0, xw: np.where(np.abs(x0) > 0.5, np.sign(x0), np.sign(xw.sum(1) + 1e-300))
    W1 = rng.standard_normal((d + 1, 8))
    w2 = rng.standard_normal(8)
    return lambda x0, xw: np.sign(np.maximum(np.column_stack([x0, xw]) @ W1, 0) @ w2 - 0.1 * w2.sum())


# ------------------------------------------------------------------------------- Monte Carlo
@settings(max_examples=20)
@given(data=st.data(), model=S.lp_models(d=S.d_small), e=st.tuples(S.budget, S.budget, S.budget), beta=S.beta,
       x0_moves=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_closed_forms_agree_with_monte_carlo(data, model, e, beta, x0_moves, seed):
    clf = data.draw(S.linear_classifiers(model.d))
    rng = np.random.default_rng(seed)
    n = 5000
    y, x0, xw = sample_lp(model, n, rng)
    threats = _threats(*e)
    checks = [(clean_accuracy(model, clf), lp_mc_accuracy(clf, y, x0, xw))]
    for t in threats:
        r0, rw = lp_worst_perturbation(clf, t, y, x0_moves)
        norms = {"linf": np.maximum(np.abs(r0), np.abs(rw).max(1)), "l1": np.abs(r0) + np.abs(rw).sum(1),
                 "l2": np.sqrt(r0 ** 2 + (rw ** 2).sum(1))}[t.kind]
        assert np.all(norms <= t.eps * (1 + 1e-12) + 1e-15)
        if not x0_moves:
            assert np.all(r0 == 0)
        checks.append((robust_accuracy(model, clf, t, x0_moves), lp_mc_accuracy(clf, y, x0, xw, (t,),
                                                                                 perturb_x0=x0_moves)))
    checks.append((union_accuracy(model, clf, threats, x0_moves),
                   lp_mc_accuracy(clf, y, x0, xw, threats, perturb_x0=x0_moves)))
    checks.append((affine_accuracy(model, clf, threats[0], threats[1], beta, x0_moves),
                   lp_mc_accuracy(clf, y, x0, xw, threats[:2], beta=beta, perturb_x0=x0_moves)))
    for theory, ok in checks:
        mc = float(np.mean(ok))
        assert abs(mc - theory) <= S.Q_MC * binomial_se(theory, n) + 1e-12, (mc, theory)


def test_monte_carlo_catches_a_wrong_dual_norm():
    """The same comparison fails for a formula that forgets that l_1 can move x0 (drop from w only)."""
    model = LpModel(d=20, a=2.0, p0=0.9)
    clf = LinearClassifier.symmetric(model.d, 1.0, 1.0, 0.0)
    t = Threat("l1", 1.0)
    rng = np.random.default_rng(7)
    n = 5000
    y, x0, xw = sample_lp(model, n, rng)
    mc = float(np.mean(lp_mc_accuracy(clf, y, x0, xw, (t,))))
    right, wrong = robust_accuracy(model, clf, t), robust_accuracy(model, clf, t, perturb_x0=False)
    assert abs(mc - right) <= S.Q_MC * binomial_se(right, n)
    assert abs(mc - wrong) > S.Q_MC * binomial_se(wrong, n)


# ------------------------------------------------------------------------------- frontier
@settings(max_examples=8)
@given(model=S.lp_models(d=st.integers(2, 400)))
@example(model=LpModel(d=200, a=2.0, p0=0.95))
def test_frontier_is_ordered_and_below_the_coupling_bound(model):
    e_inf = 2 * model.eta
    fr = frontier(model, Threat("linf", e_inf), Threat("l1", 2.0), n_theta=121, n_psi=61, n_tau=3)
    ok = np.isfinite(fr.F)
    assert np.all(np.diff(fr.F[ok]) <= S.EXACT)  # non-increasing in the target
    assert np.all(fr.F_sym[ok] <= fr.F[ok] + S.EXACT) and np.all(fr.F[ok] <= fr.envelope[ok] + S.EXACT)
    assert fr.best_union <= min(fr.best_a, fr.best_b) + S.EXACT
    assert fr.best_union == pytest.approx(0.5, abs=S.EXACT)  # the constant classifier, and no better
    assert fr.best_sum <= coupling_bound(model, e_inf, 2.0) + S.EXACT
    assert fr.best_a >= model.p0 - S.EXACT or 2 * model.eta >= 1  # the x0 classifier is in the family
    assert fr.best_b >= float(ndtr(model.a - 2 / math.sqrt(model.d))) - S.EXACT
    # every frontier value is achieved by the classifier recorded with it
    for i in np.flatnonzero(ok)[::10]:
        if np.isfinite(fr.c[i]) and fr.tau[i] == 0:
            clf = LinearClassifier.symmetric(model.d, fr.w0[i], fr.wz[i], fr.c[i])
            assert robust_accuracy(model, clf, Threat("linf", e_inf)) >= fr.t[i] - S.EXACT
            assert robust_accuracy(model, clf, Threat("l1", 2.0)) == pytest.approx(fr.F[i], abs=1e-9)


@settings(max_examples=15)
@given(data=st.data(), model=S.lp_models(d=st.integers(2, 30)))
def test_every_linear_classifier_lies_below_the_envelope(data, model):
    """Lemma 2: (acc_inf, acc_1) of any linear classifier is below the concave envelope (up to the grid)."""
    e_inf = 2 * model.eta
    fr = frontier(model, Threat("linf", e_inf), Threat("l1", 2.0), n_theta=241, n_psi=121, n_tau=0)
    for _ in range(5):
        clf = data.draw(S.linear_classifiers(model.d))
        ai = robust_accuracy(model, clf, Threat("linf", e_inf))
        a1 = robust_accuracy(model, clf, Threat("l1", 2.0))
        env = np.interp(ai - S.GRID, fr.t[np.isfinite(fr.envelope)], fr.envelope[np.isfinite(fr.envelope)])
        assert a1 <= env + S.GRID


def test_pareto_and_envelope_helpers_on_a_known_set():
    A = np.array([0.0, 0.5, 1.0, 0.2])
    B = np.array([1.0, 0.1, 0.0, 0.3])
    F, idx = pareto_frontier(A, B, [0.0, 0.3, 0.5, 0.9, 1.0])
    assert F.tolist() == [1.0, 0.1, 0.1, 0.0, 0.0] and idx.tolist() == [0, 1, 1, 2, 2]
    env = concave_envelope([0.0, 0.5, 1.0], [1.0, 0.1, 0.0])
    assert env.tolist() == pytest.approx([1.0, 0.5, 0.0])


@pytest.mark.parametrize("kwargs", [dict(d=0), dict(d=2.5), dict(a=0.0), dict(a=float("nan")), dict(p0=1.5)])
def test_invalid_models_are_rejected(kwargs):
    with pytest.raises(ParameterError):
        LpModel(**kwargs)


def test_invalid_inputs_are_rejected():
    model = LpModel(d=3)
    with pytest.raises(ParameterError, match="d = 3"):
        clean_accuracy(model, LinearClassifier(1.0, np.zeros(4)))
    with pytest.raises(ParameterError, match="beta"):
        affine_accuracy(model, LinearClassifier(1.0, np.zeros(3)), Threat("linf", 1), Threat("l1", 1), 1.5)
    with pytest.raises(ParameterError, match="eps"):
        Threat("linf", -1.0)
    with pytest.raises(ParameterError, match="threat kind"):
        Threat("l3", 1.0)
    with pytest.raises(ParameterError):
        LinearClassifier(float("inf"), np.zeros(3))
