"""The ODE finishes on valid input: the step-like stiff case that hung LSODA, a wall-clock guard that ends a
run with one line instead of a hang, and a search over the corners of the valid parameter domain."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulate.linear.ode import integrate
from theory.params import RANGES, ParameterError, Params

#: a corner of the valid domain: every value alone finishes, together LSODA's step size collapsed (no output in an hour)
HANG = dict(rho=1e-4, eps=100.0, erf_scale=1e-3, b0=100.0, R0=-1.0, loss="cross_entropy")


def test_the_step_like_stiff_case_finishes():
    t0 = time.process_time()
    traj = integrate(Params(**HANG), np.arange(0.0, 10.5, 0.5), time_limit=300)
    assert time.process_time() - t0 < 60
    assert traj.solver["method"] == "BDF"  # the fallback took over from LSODA
    # the state sits at the fast equilibrium of dR/dalpha ~ 400 - 3.2e13 R (R ~ 1.25e-11), b near 0
    assert np.all(np.isfinite(traj.R)) and abs(traj.R[-1]) < 1e-9 and abs(traj.b[-1]) < 1e-6
    # an independent route to the equilibrium: the root of the drift dR/dalpha at b = 0 (brentq)
    from scipy.optimize import brentq

    from theory.ode import rhs

    p = Params(**HANG)
    R_star = brentq(lambda R: rhs(R, 0.0, p, "auto")[0], 1e-13, 1e-9, xtol=1e-20)
    assert abs(traj.R[-1] - R_star) < 1e-3 * R_star, (traj.R[-1], R_star)


def test_the_wall_clock_guard_is_one_error():
    with pytest.raises(ParameterError, match="reached only alpha") as exc:
        integrate(Params(**HANG), [0.0, 10.0], method="LSODA", time_limit=0.5)
    assert len(str(exc.value).splitlines()) == 1


def _corner(name: str, side: int) -> float:
    lo, hi, ends, _ = RANGES[name]
    if side == 0:
        return lo if ends[0] == "[" else (lo + 1e-4 if lo == 0 else lo * (1 + 1e-6))
    return hi if ends[1] == "]" else hi * (1 - 1e-6)


CORNER_FIELDS = ("rho", "v1", "v2", "eta_w", "eta_b", "eps", "erf_scale", "R0", "b0")


@pytest.mark.slow
@settings(max_examples=12, deadline=None)
@given(sides=st.tuples(*[st.integers(0, 1)] * len(CORNER_FIELDS)), prior=st.sampled_from([0.01, 0.99]),
       loss=st.sampled_from(["quadratic", "cross_entropy"]))
def test_corners_of_the_domain_finish(sides, prior, loss):
    """Opt-in (-m slow): each corner integrates to alpha = 10 within the guard, or is refused by Params."""
    values = {n: _corner(n, s) for n, s in zip(CORNER_FIELDS, sides)}
    try:
        p = Params(prior=prior, loss=loss, **values)
    except ParameterError:
        return  # outside the valid domain (e.g. rho / sqrt(v) above its bound)
    traj = integrate(p, [0.0, 1.0, 10.0], time_limit=120)
    assert np.all(np.isfinite(traj.R)) and np.all(np.isfinite(traj.b))
