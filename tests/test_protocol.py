"""Optimal protocols: exact derivatives, exact gradients, Pontryagin's conditions, the Monte Carlo with a schedule.

Independent routes: the closed-form derivatives of theory.control against central differences of
theory.ode.drift (a different formula: closed-form Gaussian moments, not Gauss-Hermite of delta'); the
forward-sensitivity gradient against central differences of the objective and against the adjoint
(costate) gradient; the Monte Carlo with a piecewise-constant budget against the ODE of the same schedule.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulate import protocol
from simulate.compare import TOLERANCES, sidak_quantile
from simulate.protocol import Problem, evaluate, pontryagin
from theory import Params, adversarial_error, drift, jacobian, test_error
from theory.control import drift_derivatives, objective_terms
from tests.tolerances import report

S2 = Params(rho=2.0, prior=0.7, eps=0.0)
# central differences with h = 1e-6 of functions of size ~0.1: truncation h^2 f''' ~ 1e-12, rounding
# 1e-17/h ~ 1e-11; the Gauss-Hermite means (128 nodes) are accurate to 1e-13.  1e-8 leaves a margin.
DERIV_TOL = 1e-8
H = 1e-6


def _drift(R, b, u, p):
    return np.array(drift(R, b, rho=p.rho, prior=p.prior, v1=p.v1, v2=p.v2, eta_w=p.eta_w, eta_b=p.eta_b, eps=u,
                          erf_scale=p.erf_scale, loss=p.loss))


@pytest.mark.parametrize("p", [S2, Params(rho=1.3, prior=0.3, v1=0.7, v2=1.8, loss="cross_entropy", erf_scale=2**0.5)])
@pytest.mark.parametrize("state", [(0.3, -0.2, 0.7), (0.9, 0.5, 1.6), (-0.4, 0.1, 0.05)])
def test_drift_derivatives_match_central_differences(p, state):
    R, b, u = state
    f, J, fu = drift_derivatives(R, b, u, p)
    assert np.allclose(f, _drift(R, b, u, p), atol=1e-12, rtol=0)
    J_fd = jacobian(R, b, p.replace(eps=u), h=H)
    assert np.allclose(J, J_fd, atol=DERIV_TOL, rtol=0), report("df/dx", J, J_fd)
    fu_fd = (_drift(R, b, u + H, p) - _drift(R, b, u - H, p)) / (2 * H)
    assert np.allclose(fu, fu_fd, atol=DERIV_TOL, rtol=0), report("df/du", fu, fu_fd)
    # wrong variants fail the same checks: the perturbation's sign flipped (x = h + tau eps - b), and the
    # Jacobian transposed
    fu_flipped = -drift_derivatives(R, b, -u, p)[2]
    assert not np.allclose(fu_flipped, fu_fd, atol=DERIV_TOL, rtol=0)
    assert not np.allclose(J.T, J_fd, atol=DERIV_TOL, rtol=0)


def test_objective_gradient_matches_central_differences():
    for lam in (0.0, 1.0):
        val, g = objective_terms(0.5, 0.3, S2, 1.0, lam)

        def phi(R, b):
            return adversarial_error(R, b, 1.0, S2) + lam * test_error(R, b, S2)

        assert abs(val - phi(0.5, 0.3)) < 1e-15
        fd = [(phi(0.5 + H, 0.3) - phi(0.5 - H, 0.3)) / (2 * H), (phi(0.5, 0.3 + H) - phi(0.5, 0.3 - H)) / (2 * H)]
        assert np.allclose(g, fd, atol=DERIV_TOL, rtol=0), report("grad Phi", g, fd)


@pytest.mark.parametrize("run_weight", [0.0, 0.5])
def test_schedule_gradient_is_exact(run_weight):
    """Forward sensitivities vs central differences of J (h = 1e-5) and vs the adjoint integral of sigma."""
    prob = Problem(params=S2, alpha_F=20.0, eps_max=2.0, segments=5, lam=1.0, run_weight=run_weight)
    u = np.array([0.2, 1.1, 0.6, 1.9, 0.4])
    J, g = evaluate(prob, u)
    h = 1e-5
    fd = np.array([(evaluate(prob, u + h * e, grad=False) - evaluate(prob, u - h * e, grad=False)) / (2 * h)
                   for e in np.eye(5)])
    # truncation h^2 J''' ~ 1e-10, rounding (ODE rtol 1e-10 on J ~ 0.6)/h ~ 1e-5 * ... observed ~1e-11
    assert np.allclose(g, fd, atol=1e-8, rtol=0), report("dJ/du", g, fd)
    pm = pontryagin(prob, u, grad_forward=g, per_piece=4, n_u=11)
    assert pm["grad_forward_vs_adjoint_max_abs"] < 1e-9, pm["grad_forward_vs_adjoint_max_abs"]
    # a wrong gradient (the pieces in reverse order) fails the comparison
    assert not np.allclose(g[::-1], fd, atol=1e-8, rtol=0)


def test_optimum_satisfies_pontryagin_and_beats_constants():
    prob = Problem(params=S2, alpha_F=30.0, eps_max=2.0, segments=6, lam=1.0)
    e_c, J_c = protocol.best_constant(prob, scan=11)
    opt = protocol.optimise(prob, starts=[np.full(6, e_c), np.zeros(6)], maxiter=200)
    assert opt["J"] <= J_c + 1e-12 and opt["J"] < evaluate(prob, 0.0, grad=False)
    pm = pontryagin(prob, opt["u"], grad_forward=opt["grad"], per_piece=4, n_u=41)
    kkt = pm["kkt"]
    # first-order conditions of the box, to the optimiser's tolerance (projected gradient ~ 1e-8)
    if kkt["interior_max_abs_grad"] is not None:
        assert kkt["interior_max_abs_grad"] < 1e-6
    if kkt["lower_min_grad"] is not None:
        assert kkt["lower_min_grad"] > -1e-6
    if kkt["upper_max_grad"] is not None:
        assert kkt["upper_max_grad"] < 1e-6
    # a perturbed schedule violates them
    u_bad = np.clip(opt["u"] + np.array([0.3, -0.3, 0.3, -0.3, 0.3, -0.3]), 0, 2)
    _, g_bad = evaluate(prob, u_bad)
    mid = (u_bad > 1e-9) & (u_bad < 2 - 1e-9)
    assert np.max(np.abs(g_bad[mid])) > 1e-5


def test_constant_schedule_is_bit_identical_to_no_schedule():
    pytest.importorskip("numba")
    from simulate.mc import run_mc

    p = S2.replace(eps=0.5)
    for engine, N in (("reduced", 500), ("full", 64)):
        a = run_mc(p, N, 4, [0, 2, 5], 1, engine=engine, progress=False)
        b = run_mc(p, N, 4, [0, 2, 5], 1, engine=engine, progress=False, eps_schedule=([0, 1.3, 3.7], [0.5] * 3))
        assert np.array_equal(a.R, b.R) and np.array_equal(a.b, b.b)


def test_mc_with_schedule_follows_the_ode_of_that_schedule():
    pytest.importorskip("numba")
    from simulate.mc import run_mc

    N, M = 1000, 64
    prob = Problem(params=S2, alpha_F=20.0, eps_max=2.0, segments=2)
    u = np.array([1.5, 0.2])
    ode = protocol.trajectory(prob, u, per_piece=1)  # alpha = 0, 10, 20
    res = run_mc(S2.replace(eps=1.5), N, M, [0.0, 10.0, 20.0], 7, engine="reduced", eps_test=1.0, progress=False,
                 eps_schedule=(prob.edges[:-1], u))
    q = sidak_quantile(2 * 4)
    for name in ("R", "b", "E", "S"):
        dev = np.abs(res.mean(name)[1:] - ode[name][1:])
        allow = q * res.se(name)[1:] + TOLERANCES["bias"][name] / N + TOLERANCES["solver"]
        assert np.all(dev <= allow), report(name, res.mean(name)[1:], ode[name][1:])
    # the wrong ODE (the first budget kept throughout) fails the same check at the end
    wrong = protocol.trajectory(prob, np.array([1.5, 1.5]), per_piece=1)
    dev = np.abs(res.mean("b")[2] - wrong["b"][2])
    assert dev > q * res.se("b")[2] + TOLERANCES["bias"]["b"] / N


def test_schedule_validation():
    from simulate.mc import _check_schedule

    from theory import ParameterError

    for bad in (([0.5, 1.0], [1, 1]), ([0, 1], [1]), ([0, 1, 1], [1, 1, 1]), ([0], [-1.0])):
        with pytest.raises(ParameterError):
            _check_schedule(bad, 100)


@pytest.mark.parametrize("argv,needle", [
    (["--alpha-F", "-1"], "alpha-F"),
    (["--segments", "0"], "segments"),
    (["--eps-max", "0"], "eps-max"),
    (["--prior", "1.5"], "prior"),
    (["--eps-law", "uniform"], "unrecognized"),
    (["--out", "x.csv"], "--out"),
])
def test_cli_bad_input_exits_2(argv, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        protocol.main(argv + ["--no-mc", "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
