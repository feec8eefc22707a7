"""Properties of the closed-form errors E, S and of the reference errors."""

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from scipy.integrate import quad
from scipy.stats import norm

from theory import (Params, adversarial_error, bayes_error, best_linear_adversarial_error,
                    best_linear_error, robustness_curve, test_error)

from . import strategies as st_
from .tolerances import PROBABILITY


@given(p=st_.params(), R=st_.R, b=st_.b, eps=st.floats(0, 5))
def test_errors_are_probabilities(p, R, b, eps):
    E = float(test_error(R, b, p))
    S = float(adversarial_error(R, b, eps, p))
    assert 0.0 <= E <= 1.0 and 0.0 <= S <= 1.0


@given(p=st_.params(), R=st_.R, b=st_.b)
def test_robustness_curve_starts_at_E_and_is_non_decreasing(p, R, b):
    eps = np.linspace(0.0, 4.0, 81)
    S = robustness_curve(R, b, eps, p)
    assert S[0] == pytest.approx(float(test_error(R, b, p)), abs=PROBABILITY)
    assert np.all(np.diff(S) >= -PROBABILITY)


@given(p=st_.params(), R=st_.R, b=st_.b, eps=st.floats(0, 3))
def test_swapping_the_clusters_maps_b_to_minus_b(p, R, b, eps):
    assert float(adversarial_error(R, b, eps, p)) == pytest.approx(
        float(adversarial_error(R, -b, eps, p.swapped())), abs=1e-12)


def test_errors_against_direct_integration():
    """E from the definition: integrate the misclassified mass of each cluster's field."""
    p = Params(rho=1.7, prior=0.35, v1=0.8, v2=1.9)
    R, b, eps = 0.6, 0.3, 0.4
    plus = quad(lambda h: norm.pdf(h, 1.7 * R / 2, math.sqrt(0.8)), -np.inf, b + eps)[0]
    minus = quad(lambda h: norm.pdf(h, -1.7 * R / 2, math.sqrt(1.9)), b - eps, np.inf)[0]
    assert float(adversarial_error(R, b, eps, p)) == pytest.approx(0.35 * plus + 0.65 * minus, abs=1e-10)


@given(p=st_.params(), R=st_.R, b=st_.b, eps=st.floats(0, 3))
def test_best_linear_adversarial_error_is_a_lower_bound(p, R, b, eps):
    best, _ = best_linear_adversarial_error(eps, p)
    assert best <= float(adversarial_error(R, b, eps, p)) + 1e-10
    assert best <= min(p.prior, 1 - p.prior) + 1e-15


@given(p=st_.params().map(lambda q: q.replace(v2=q.v1)), eps=st.floats(0, 0.99))
@example(p=Params(prior=0.7), eps=0.5)
def test_best_threshold_matches_the_closed_form_for_equal_variances(p, eps):
    eps = eps * p.rho / 2  # eps < rho/2: a finite optimal threshold exists
    best, b_star = best_linear_adversarial_error(eps, p)
    closed = p.v1 * math.log((1 - p.prior) / p.prior) / (p.rho - 2 * eps)
    S_closed = float(adversarial_error(1.0, closed, eps, p))
    assert best == pytest.approx(min(S_closed, min(p.prior, 1 - p.prior)), abs=1e-9)


@given(p=st_.params())
def test_bayes_error_is_below_the_best_linear_error(p):
    assert bayes_error(p) <= best_linear_error(p)[0] + 1e-9


@pytest.mark.parametrize("v2", [0.4, 1.0, 2.5])
def test_bayes_error_against_brute_force(v2):
    p = Params(rho=1.5, prior=0.6, v1=1.0, v2=v2)
    h = np.linspace(-15, 15, 300001)
    f_plus = p.prior * norm.pdf(h, 0.75, 1.0)
    f_minus = (1 - p.prior) * norm.pdf(h, -0.75, math.sqrt(v2))
    brute = np.trapezoid(np.minimum(f_plus, f_minus), h)
    assert bayes_error(p) == pytest.approx(brute, abs=1e-7)
