"""The multinorm family's parameters, its errors from the order parameters, and its Monte Carlo engine.

The errors of :mod:`theory.multinorm.errors` (a closed form in the order parameters) are checked against
an independent route: fresh test points drawn from the distribution, the exact attacks applied as explicit
perturbation vectors, and the sign of w.(x + delta) - b counted.
"""

import math

import numpy as np
import pytest

from simulate.compare import sidak_quantile
from theory.multinorm import MultinormParams, ParameterError, SCHEMES, check_d, errors, state_from_weights
from theory.multinorm.params import D_MAX

from .tolerances import MULTINORM_FAMILYWISE, report


# ---------------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------------
def test_params_defaults_key_replace():
    p = MultinormParams()
    assert (p.a, p.p0, p.e, p.eps1, p.eta_w, p.eta_b, p.w0) == (2.0, 0.9, 4.0, 2.0, 0.2, 0.1, 0.2)
    assert p.key() == MultinormParams().key() and p.key() != p.replace(scheme="max").key()
    assert p.replace(scheme="avg").scheme == "avg"
    assert {s: MultinormParams(scheme=s).attacks for s in SCHEMES}["avg"] == ("inf", "l1")
    with pytest.raises(ParameterError, match="unknown parameter"):
        p.replace(rho=1.0)


@pytest.mark.parametrize("changes, flag", [({"a": 0.0}, "a"), ({"p0": 1.5}, "p0"), ({"e": -1.0}, "e"),
                                           ({"eps1": float("nan")}, "eps1"), ({"eta_w": 0.0}, "eta_w"),
                                           ({"w0": 1.0}, "w0"), ({"scheme": "msd"}, "scheme"),
                                           ({"loss": "hinge"}, "loss"), ({"eps2": "x"}, "eps2")])
def test_params_reject_with_one_line_naming_the_field(changes, flag):
    with pytest.raises(ParameterError) as err:
        MultinormParams(**changes)
    msg = str(err.value)
    assert msg.startswith(flag + " ") and "\n" not in msg


def test_check_d():
    assert check_d("inf") == math.inf and check_d(1000) == 1000 and check_d("4000") == 4000
    for bad in (0, -3, 2.5, "x", D_MAX + 1, True):
        with pytest.raises(ParameterError, match="^d must"):
            check_d(bad)
    with pytest.raises(ParameterError):
        check_d(math.inf, allow_inf=False)


# ---------------------------------------------------------------------------------------------------
# Errors from the order parameters vs direct sampling with explicit attack vectors
# ---------------------------------------------------------------------------------------------------
def _sampled_errors(w, b, p: MultinormParams, n: int, rng) -> dict[str, float]:
    """Errors of sign(w.x - b) on n fresh points, each attack applied as an explicit delta (no formula)."""
    d = w.size - 1
    y = rng.choice([-1.0, 1.0], size=n)
    x = np.empty((n, d + 1))
    x[:, 0] = np.where(rng.random(n) < p.p0, y, -y)
    x[:, 1:] = y[:, None] * p.a / math.sqrt(d) + rng.standard_normal((n, d))
    delta_inf = -y[:, None] * (p.e / math.sqrt(d)) * np.sign(w)[None, :]
    j = int(np.argmax(np.abs(w)))
    delta_1 = np.zeros_like(x)
    delta_1[:, j] = -y * p.eps1 * np.sign(w[j])
    ok = {}
    for name, delta in (("E", 0.0), ("S_inf", delta_inf), ("S_1", delta_1)):
        ok[name] = y * ((x + delta) @ w - b) > 0
    ok["union"] = ok["S_inf"] & ok["S_1"]
    return {k: 1.0 - float(v.mean()) for k, v in ok.items()}


@pytest.mark.parametrize("w0, b, sparse", [(0.2, 0.0, False), (0.6, 0.3, False), (-0.1, -0.2, True),
                                           (0.02, 0.1, True)])
def test_errors_match_direct_sampling(w0, b, sparse):
    """The l_1 attack hits x_0 or (sparse weak weights, small w0) the largest weak weight."""
    rng = np.random.default_rng(7)
    d, n = 40, 200_000
    p = MultinormParams(a=2.0, p0=0.9, e=3.0, eps1=1.5)
    u = rng.standard_normal(d) + 0.5
    if sparse:
        u = np.where(np.abs(u) > 1.0, u, 0.0) * rng.exponential(1.0, d)
    w = np.concatenate([[w0], u * math.sqrt(1 - w0 * w0) / np.linalg.norm(u)])
    exact = errors(state_from_weights(w, b), p, d)
    sampled = _sampled_errors(w, b, p, n, rng)
    # binomial standard errors; the four errors of one state are compared at the Sidak quantile over all
    # 4 x 4 comparisons of this test (a correct formula fails with probability MULTINORM_FAMILYWISE)
    q = sidak_quantile(16, MULTINORM_FAMILYWISE)
    for k, v in sampled.items():
        se = math.sqrt(max(float(exact[k]) * (1 - float(exact[k])), 1e-6) / n)
        assert abs(v - float(exact[k])) <= q * se, report(k, v, exact[k])


def test_errors_limits():
    """d = inf drops the x_0 term of the l_inf shift; Q = 0 (all weight on x_0) gives the p0 step."""
    p = MultinormParams(e=0.0, eps1=0.0)
    from theory.multinorm import State
    s = State(w0=1.0, b=0.0, ubar=0.0, Q=0.0, L1=0.0, wmax=0.0)
    assert float(errors(s, p, math.inf)["E"]) == pytest.approx(1 - p.p0, abs=1e-15)
    s = State(w0=0.5, b=0.0, ubar=0.5, Q=0.75, L1=0.7, wmax=0.01)
    q = p.replace(e=2.0)
    assert float(errors(s, q, 10**8)["S_inf"]) == pytest.approx(float(errors(s, q, math.inf)["S_inf"]), abs=1e-3)
    assert float(errors(s, q, 100)["S_inf"]) > float(errors(s, q, math.inf)["S_inf"])
