import math

import pytest
from hypothesis import given

from theory import Params, ParameterError, eps_ppf, eps_quadrature
from theory.params import EPS_LAWS

from . import strategies as st_


@pytest.mark.parametrize("field,value,fragment", [
    ("rho", 0.0, "rho must lie in (0, 100]"),
    ("rho", -1.0, "rho must lie in (0, 100]"),
    ("prior", 0.0, "prior must lie in (0, 1)"),
    ("prior", 1.0, "prior must lie in (0, 1)"),
    ("v1", -0.5, "v1 must lie in [0.0001, 10000]"),
    ("v2", 0.0, "v2 must lie in [0.0001, 10000]"),
    ("eps", -0.1, "eps must lie in [0, 100]"),
    ("eta_w", 0.0, "eta_w must lie in (0, 10]"),
    ("eta_b", -1.0, "eta_b must lie in [0, 10]"),
    ("R0", 1.5, "R0 must lie in [-1, 1]"),
    ("erf_scale", 0.0, "erf_scale must lie in [0.001, 1000]"),
    ("rho", math.nan, "rho must be finite"),
    ("eps", math.inf, "eps must be finite"),
        ("rho", 1e308, "rho must lie in (0, 100]"),
        ("v1", 1e308, "v1 must lie in [0.0001, 10000]"),
        ("b0", 1e3, "b0 must lie in [-100, 100]"),
    ("b0", "abc", "b0 must be a real number"),
    ("eps_law", "gamma", "eps_law must be one of"),
    ("loss", "hinge", "loss must be one of"),
])
def test_invalid_values_name_the_parameter_and_range(field, value, fragment):
    with pytest.raises(ParameterError, match=fragment.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        Params(**{field: value})


def test_keyword_only_frozen_replace_and_key():
    with pytest.raises(TypeError):
        Params(2.0)  # keyword-only
    p = Params()
    with pytest.raises(AttributeError):
        p.rho = 3.0  # frozen
    q = p.replace(rho=3.0)
    assert q.rho == 3.0 and p.rho == 2.0
    with pytest.raises(ParameterError, match=r"rho must lie in \(0, 100\]"):
        p.replace(rho=-1.0)
    with pytest.raises(ParameterError, match="unknown parameter"):
        p.replace(nonsense=1)
    assert p.key() == Params().key() and p.key() != q.key()
    assert len(p.key()) == 16


@given(st_.params())
def test_swap_is_an_involution(p):
    q = p.swapped().swapped()
    assert q.prior == pytest.approx(p.prior, abs=1e-15)  # 1 - (1 - p) rounds
    assert q.replace(prior=p.prior) == p


@pytest.mark.parametrize("law", EPS_LAWS)
@pytest.mark.parametrize("eps", [0.3, 1.0, 2.5])
def test_budget_laws_have_mean_eps_and_quadrature_matches_inverse_cdf(law, eps):
    from scipy.integrate import quad

    nodes, weights = eps_quadrature(law, eps, 48)
    assert math.isclose(weights.sum(), 1.0, rel_tol=1e-12)
    assert math.isclose(float((weights * nodes).sum()), eps, rel_tol=1e-10)
    # E[cos(eps_example)] by the quadrature and by integrating the inverse CDF over u in (0, 1)
    by_nodes = float((weights * ((nodes / (1 + eps)) ** 2 + 1) ** -1).sum())
    by_ppf = quad(lambda u: 1.0 / ((eps_ppf(law, eps, u) / (1 + eps)) ** 2 + 1), 0, 1, limit=200)[0]
    assert by_nodes == pytest.approx(by_ppf, abs=1e-7)
