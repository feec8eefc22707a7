"""Hypothesis strategies and tolerances for the trade-off tests (tests/test_tradeoff*.py, test_bridge.py)."""

import math

import numpy as np
from hypothesis import strategies as st

from theory.tradeoff_lp import LinearClassifier, LpModel
from theory.tradeoff_spatial import RingModel

from .strategies import log_uniform

# Monte Carlo: |MC - theory| <= Q_MC * binomial SE.  Q_MC = 4.5 keeps the two-sided false-alarm rate
# per comparison at 7e-6, so ~200 comparisons per run fail by chance with probability ~1e-3 (and the
# derandomised CI profile makes any run reproducible).
Q_MC = 4.5
# Closed-form identities (monotonicity, union <= single, ...) hold up to rounding of Phi.
EXACT = 1e-12
# Frontier quantities come from a grid over the classifier family; between grid points the accuracy
# moves by at most ~ (slope) x (grid step); 0.02 is several grid steps at the sizes used in the tests.
GRID = 0.02

d_small = st.integers(1, 30)
d_any = st.integers(1, 400)
a = log_uniform(0.2, 6.0)
p0 = st.floats(0.5, 1.0)
budget = st.one_of(st.just(0.0), log_uniform(1e-3, 4.0))
beta = st.floats(0.0, 1.0)
weight = st.floats(-3.0, 3.0, allow_nan=False)


@st.composite
def lp_models(draw, d=d_any) -> LpModel:
    return LpModel(d=draw(d), a=draw(a), p0=draw(p0))


@st.composite
def ring_models(draw, d=st.integers(1, 40)) -> RingModel:
    return RingModel(d=2 * draw(d), a=draw(a), p0=draw(p0))


@st.composite
def linear_classifiers(draw, d: int) -> LinearClassifier:
    """A classifier with arbitrary weak weights, or a symmetric one, or one with only x0 or only weak."""
    kind = draw(st.sampled_from(["general", "symmetric", "x0_only", "weak_only"]))
    c = draw(st.floats(-2.0, 2.0))
    if kind == "general":
        w = np.array(draw(st.lists(weight, min_size=d, max_size=d)))
        return LinearClassifier(draw(weight), w, c)
    if kind == "symmetric":
        return LinearClassifier.symmetric(d, draw(weight), draw(weight), c)
    if kind == "x0_only":
        return LinearClassifier(draw(st.floats(0.1, 3.0)), np.zeros(d), c)
    return LinearClassifier(0.0, np.full(d, draw(st.floats(0.1, 3.0)) / math.sqrt(d)), c)
