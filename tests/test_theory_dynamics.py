"""Properties of the ODE trajectories, fixed points and solver accuracy."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulate.ode import STATED_ERROR, integrate, integrate_grid
from theory import Params, fixed_points, rhs
from theory.ode import drift

from . import tolerances as T

from . import strategies as st_

ALPHAS = np.linspace(0.0, 60.0, 31)


@settings(max_examples=25)
@given(p=st_.params(R0=0.0), R0=st.floats(-1, 1), b0=st.floats(-2, 2))
def test_R_stays_in_the_unit_interval(p, R0, b0):
    traj = integrate(p.replace(R0=R0, b0=b0), ALPHAS, rtol=1e-8, atol=1e-10)
    assert np.all(np.abs(traj.R) <= 1.0 + 1e-9)
    assert np.all((traj.E >= 0) & (traj.E <= 1) & (traj.S >= 0) & (traj.S <= 1))


@settings(max_examples=15)
@given(p=st_.params())
def test_symmetric_mixture_keeps_b_at_zero(p):
    p = p.replace(prior=0.5, v2=p.v1, b0=0.0)
    traj = integrate(p, ALPHAS)
    assert np.max(np.abs(traj.b)) < 1e-12


@settings(max_examples=15)
@given(p=st_.params(), b0=st.floats(-1, 1))
def test_swapping_clusters_maps_the_trajectory_b_to_minus_b(p, b0):
    p = p.replace(b0=b0)
    a = integrate(p, ALPHAS)
    s = integrate(p.swapped(), ALPHAS)
    assert np.max(np.abs(a.R - s.R)) < 10 * STATED_ERROR
    assert np.max(np.abs(a.b + s.b)) < 10 * STATED_ERROR


@pytest.mark.parametrize("prior,eps", [(0.5, 1.0), (0.7, 1.0), (0.7, 0.0), (0.3, 0.5)])
def test_halving_the_tolerance_changes_the_trajectory_by_less_than_the_stated_error(prior, eps):
    p = Params(prior=prior, eps=eps)
    alphas = np.linspace(0, 200, 41)
    a = integrate(p, alphas)
    h = integrate(p, alphas, rtol=0.5e-10, atol=0.5e-12)
    ref = integrate(p, alphas, rtol=1e-13, atol=1e-14)
    for other in (h, ref):
        assert np.max(np.abs(a.R - other.R)) < STATED_ERROR
        assert np.max(np.abs(a.b - other.b)) < STATED_ERROR


def test_a_loose_solver_is_caught_by_the_same_check():
    p = Params(prior=0.7)
    alphas = np.linspace(0, 200, 41)
    loose = integrate(p, alphas, rtol=1e-3, atol=1e-3, method="RK45")
    ref = integrate(p, alphas, rtol=1e-13, atol=1e-14)
    assert max(np.max(np.abs(loose.R - ref.R)), np.max(np.abs(loose.b - ref.b))) > STATED_ERROR


@pytest.mark.parametrize("prior,eps", [(0.5, 1.0), (0.7, 1.0), (0.7, 0.0)])
def test_long_runs_converge_to_a_stable_fixed_point(prior, eps):
    p = Params(prior=prior, eps=eps)
    traj = integrate(p, [0.0, 5000.0])
    fps = fixed_points(p)
    stable = [fp for fp in fps if fp.stable]
    assert stable, fps
    dist = min(np.hypot(traj.R[-1] - fp.R, traj.b[-1] - fp.b) for fp in stable)
    assert dist < 1e-6
    for fp in fps:
        assert np.max(np.abs(rhs(fp.R, fp.b, p))) < 1e-10
        assert _eigenvalues_match(fp.eigenvalues, _independent_eigenvalues(fp.R, fp.b, p))


def _independent_eigenvalues(R: float, b: float, p: Params) -> np.ndarray:
    """Eigenvalues of the Jacobian by central differences of ``drift`` evaluated by numerical quadrature
    (backend 'quadrature': composite Gauss-Legendre over the Gaussian), a route that shares neither the
    closed-form right-hand side nor ``jacobian`` with the code under test."""
    h = T.JACOBIAN_FD_STEP
    kw = dict(rho=p.rho, prior=p.prior, v1=p.v1, v2=p.v2, eta_w=p.eta_w, eta_b=p.eta_b, eps=p.eps,
              erf_scale=p.erf_scale, eps_law=p.eps_law, loss=p.loss, non_robust_only=p.non_robust_only,
              backend="quadrature")
    J = np.empty((2, 2))
    for j, (dR, db) in enumerate(((h, 0.0), (0.0, h))):
        fp_, fm = np.array(drift(R + dR, b + db, **kw), float), np.array(drift(R - dR, b - db, **kw), float)
        J[:, j] = (fp_ - fm) / (2 * h)
    return np.linalg.eigvals(J)


def _eigenvalues_match(got, expected) -> bool:
    got, expected = np.sort_complex(np.asarray(got, complex)), np.sort_complex(np.asarray(expected, complex))
    return bool(np.all(np.abs(got - expected) <= T.JACOBIAN_EIGENVALUES * np.max(np.abs(expected))))


def test_a_wrong_eigenvalue_fails_the_independent_check():
    p = Params(prior=0.7, eps=1.0)
    fp = next(f for f in fixed_points(p) if f.stable)
    independent = _independent_eigenvalues(fp.R, fp.b, p)
    assert _eigenvalues_match(fp.eigenvalues, independent)
    wrong = [e * (1 + 1e-4) for e in fp.eigenvalues]  # a 0.01 % error in the eigenvalues
    assert not _eigenvalues_match(wrong, independent)


def test_grid_integration_matches_single_trajectories():
    rho = np.array([1.0, 2.0, 3.0])[:, None]
    eps = np.array([0.0, 0.5, 1.0])[None, :]
    alphas = np.array([0.0, 10.0, 50.0, 100.0])
    R, b = integrate_grid(alphas, rtol=1e-10, atol=1e-12, rho=rho, eps=eps, prior=0.7, v1=1.0, v2=1.0,
                          eta_w=0.04, eta_b=0.2)
    assert R.shape == (4, 3, 3)
    for i, r in enumerate([1.0, 2.0, 3.0]):
        for j, e in enumerate([0.0, 0.5, 1.0]):
            t = integrate(Params(rho=r, eps=e, prior=0.7), alphas)
            assert np.max(np.abs(R[:, i, j] - t.R)) < 1e-7
            assert np.max(np.abs(b[:, i, j] - t.b)) < 1e-7
