"""The fast numeric right-hand side against the sympy derivation, for every variant."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory import Params, rhs
from theory.derivation import SYMBOLS, derive, symbolic_rhs
from theory.ode import drift

from . import strategies as st_
from .tolerances import SYMBOLIC_VS_NUMERIC, WRONG_RHS_MIN_GAP, report

VARIANTS = [
    dict(),
    dict(eps=0.0),
    dict(prior=0.7, v1=1.4, v2=0.6),
    dict(erf_scale=2**0.5),
    dict(eps_law="uniform"),
    dict(eps_law="exponential", eps=0.5),
    dict(eps_law="halfnormal"),
    dict(non_robust_only=True),
    dict(non_robust_only=True, eps_law="uniform", prior=0.3),
    dict(loss="cross_entropy"),
    dict(loss="cross_entropy", non_robust_only=True, v2=2.0),
]


def test_derivation_reproduces_the_documented_drift():
    """The sympy result equals -eta_w (rho/2)(1-R^2) tau delta - (eta_w^2/2) R v delta^2, and
    E[h_B | h] = tau (rho/2)(1 - R^2) + R h."""
    S = SYMBOLS
    d = derive()
    expected = (-S["eta_w"] * S["rho"] / 2 * (1 - S["R"] ** 2) * S["tau"] * S["delta"]
                - S["eta_w"] ** 2 / 2 * S["R"] * S["v"] * S["delta"] ** 2)
    assert (d.drift_R_field - expected).simplify() == 0
    assert (d.cond_mean_hB - (S["tau"] * S["rho"] / 2 * (1 - S["R"] ** 2) + S["R"] * S["h"])).simplify() == 0
    # The eta_w^2 term really comes from |xi|^2 = q N in the renormalisation:
    assert d.drift_R_micro.coeff(S["q"]) != 0


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()) or "default")
@pytest.mark.parametrize("state", [(0.0, 0.0), (0.3, 0.2), (-0.6, -1.1), (0.95, 0.8)])
def test_symbolic_equals_numeric_rhs(variant, state):
    p = Params(**variant)
    sym = symbolic_rhs(*state, p)
    num = rhs(*state, p)
    assert np.max(np.abs(np.subtract(sym, num))) < SYMBOLIC_VS_NUMERIC, report("rhs", num, sym)


@settings(max_examples=12)
@given(p=st_.params(), R=st_.R, b=st_.b)
def test_symbolic_equals_numeric_rhs_property(p, R, b):
    sym = symbolic_rhs(R, b, p)
    num = rhs(R, b, p)
    assert np.max(np.abs(np.subtract(sym, num))) < SYMBOLIC_VS_NUMERIC, report("rhs", num, sym)


def test_dropping_the_eta_w_squared_term_is_caught():
    """A right-hand side without the eta_w^2 renormalisation term fails the same comparison."""
    p = Params()

    def wrong_rhs(R, b, params):
        # drift(eta_w * t)/t = -eta_w (rho/2)(1-R^2) <tau delta> - t (eta_w^2/2) R <v delta^2>: for
        # t -> 0 only the O(eta_w) part survives, i.e. the drift of someone who forgot |xi|^2 ~ N v.
        t = 1e-6
        kw = dict(rho=params.rho, prior=params.prior, v1=params.v1, v2=params.v2, eta_b=params.eta_b,
                  eps=params.eps)
        linear = float(drift(R, b, eta_w=params.eta_w * t, **kw)[0]) / t
        return linear, float(drift(R, b, eta_w=params.eta_w, **kw)[1])

    gaps = []
    for state in [(0.3, 0.2), (0.95, 0.0), (-0.6, -1.1)]:
        sym = symbolic_rhs(*state, p)
        good = rhs(*state, p)
        bad = wrong_rhs(*state, p)
        assert np.max(np.abs(np.subtract(sym, good))) < SYMBOLIC_VS_NUMERIC
        gaps.append(abs(sym[0] - bad[0]))
    assert max(gaps) > WRONG_RHS_MIN_GAP, f"the wrong rhs was not caught: gaps {gaps}"


@given(p=st_.params(), R=st.floats(-1, 1), b=st_.b)
def test_closed_form_equals_quadrature_backends(p, R, b):
    closed = rhs(R, b, p, backend="closed")
    backends = ["quadrature"]
    if max(p.v1, p.v2) / p.erf_scale**2 <= 3.0:  # the stated range of the Gauss-Hermite rule
        backends.append("hermite")
    for backend in backends:
        other = rhs(R, b, p, backend=backend)
        assert np.max(np.abs(np.subtract(closed, other))) < 1e-9, report(backend, other, closed)


def test_drift_vectorises_over_a_parameter_grid():
    rho = np.array([1.0, 2.0, 3.0])[:, None]
    eps = np.array([0.0, 0.5, 1.0, 1.5])[None, :]
    dR, db = drift(0.2, 0.1, rho=rho, prior=0.6, v1=1.0, v2=1.2, eta_w=0.04, eta_b=0.2, eps=eps)
    assert dR.shape == (3, 4) and db.shape == (3, 4)
    one = rhs(0.2, 0.1, Params(rho=3.0, prior=0.6, v2=1.2, eps=0.5))
    assert dR[2, 1] == pytest.approx(one[0], abs=1e-14)
    assert db[2, 1] == pytest.approx(one[1], abs=1e-14)
