"""Hypothesis strategies for the physical parameters, drawn over their valid ranges (scales log-uniform)."""

import math

from hypothesis import strategies as st

from theory import Params


def log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(math.log(lo), math.log(hi)).map(math.exp)


rho = log_uniform(0.1, 8.0)
prior = st.floats(0.02, 0.98)
variance = log_uniform(0.1, 5.0)
eta_w = log_uniform(1e-3, 0.5)
eta_b = log_uniform(1e-3, 1.0)
eps = st.one_of(st.just(0.0), log_uniform(1e-3, 3.0))
R = st.floats(-1.0, 1.0)
b = st.floats(-4.0, 4.0)


@st.composite
def params(draw, **fixed) -> Params:
    """A valid :class:`theory.Params`; keyword arguments pin fields."""
    values = dict(rho=draw(rho), prior=draw(prior), v1=draw(variance), v2=draw(variance),
                  eta_w=draw(eta_w), eta_b=draw(eta_b), eps=draw(eps))
    values.update(fixed)
    return Params(**values)
