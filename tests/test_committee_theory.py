"""The committee machine's theory: K = 1 reduces to the linear model, the sympy derivation equals the
vectorised right-hand side, wrong variants are caught, the quadrature converges, bad input is rejected."""

import numpy as np
import pytest

from simulate.committee import integrate as integrate_committee
from simulate.committee import main
from simulate.ode import integrate as integrate_linear
from theory import ParameterError, adversarial_error, rhs as linear_rhs, test_error
from theory.committee import CommitteeParams, State, drift, errors, pack

from .tolerances import (COMMITTEE_K1_VS_LINEAR, COMMITTEE_SYMBOLIC_ATTACK, COMMITTEE_SYMBOLIC_CLEAN,
                         COMMITTEE_QUAD_FAMILY_LEVEL, COMMITTEE_WRONG_MIN_GAP, report)

STATES = [(0.0, 0.0), (0.3, 0.2), (-0.6, -1.1), (0.95, 0.8)]


def _k1(R, b):
    return State(np.eye(1), np.array([[R]]), np.array([b]), np.array([1.0]))


@pytest.mark.parametrize("eps", [0.0, 1.0, 0.4])
@pytest.mark.parametrize("data", [dict(), dict(prior=0.7), dict(prior=0.3, v1=1.4, v2=0.6, rho=3.0)])
def test_k1_drift_is_the_linear_models(eps, data):
    """K = 1, v = 1, s = 1: xi - tau eps w, sigma = erf(w.xi - b); R and b drifts equal theory.ode.rhs."""
    p = CommitteeParams(K=1, eps=eps, **data)
    for R, b in STATES:
        d = drift(_k1(R, b), p)
        lin = linear_rhs(R, b, p.linear())
        got, want = [d.R[0, 0], d.b[0]], list(lin)
        assert np.max(np.abs(np.subtract(got, want))) < COMMITTEE_K1_VS_LINEAR, report("K=1 drift", got, want)


def test_k1_pgd_steps_add_up_to_a_larger_linear_budget():
    """For K = 1 every PGD step moves along -tau w: s = 3 steps of 0.2 eps equal the linear model at 0.6 eps."""
    p = CommitteeParams(K=1, eps=1.0, pgd_steps=3, pgd_step=0.2)
    for R, b in STATES:
        d = drift(_k1(R, b), p)
        lin = linear_rhs(R, b, p.linear().replace(eps=0.6))
        assert abs(d.R[0, 0] - lin[0]) < COMMITTEE_K1_VS_LINEAR and abs(d.b[0] - lin[1]) < COMMITTEE_K1_VS_LINEAR


def test_k1_errors_are_the_closed_forms():
    p = CommitteeParams(K=1, prior=0.7, v1=1.3, v2=0.8)
    for R, b in STATES:
        E, S = errors(_k1(R, b), p, 0.7)
        assert abs(E - float(test_error(R, b, p.linear()))) < COMMITTEE_K1_VS_LINEAR
        assert abs(S - float(adversarial_error(R, b, 0.7, p.linear()))) < COMMITTEE_K1_VS_LINEAR


@pytest.mark.parametrize("eps", [0.0, 1.0])
def test_k1_trajectory_is_the_linear_models(eps):
    p = CommitteeParams(K=1, prior=0.7, eps=eps)
    alphas = np.array([0.0, 10.0, 50.0, 200.0])
    tc = integrate_committee(p, alphas, method="DOP853", rtol=1e-12, atol=1e-13)
    tl = integrate_linear(p.linear(), alphas, rtol=1e-12, atol=1e-13)
    for name, lin in (("R[1,1]", tl.R), ("b[1]", tl.b), ("E", tl.E), ("S", tl.S)):
        got = getattr(tc, name)
        assert np.max(np.abs(got - lin)) < COMMITTEE_K1_VS_LINEAR, report(name, got, lin)


def _state2(preset):
    D = 1 if preset == "talk" else 2
    R = 0.3 * np.ones((2, D)) * np.array([[1.0], [-0.5]])
    return State(np.array([[1, 0.3], [0.3, 1]]), R, np.array([0.2, -0.3]),
                 np.array([0.6, 0.4]) if preset == "talk" else np.array([0.5, -0.5]))


@pytest.mark.parametrize("preset", ["talk", "xor"])
def test_symbolic_equals_numeric_rhs_clean(preset):
    from theory.committee_derivation import symbolic_drift

    p = CommitteeParams(preset=preset, K=2, eps=0.0, eta_v=0.1)
    st = _state2(preset)
    sym = symbolic_drift(st, p)
    num = pack(drift(st, p, 56))
    assert np.max(np.abs(sym - num)) < COMMITTEE_SYMBOLIC_CLEAN, report("drift", num, sym)
    # the deliberately wrong variant (renormalisation dropped) is caught by the same comparison
    wrong = pack(drift(st, p, 56, renormalise=False))
    assert np.max(np.abs(sym - wrong)) > COMMITTEE_WRONG_MIN_GAP


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["talk", "xor"])
def test_symbolic_equals_numeric_rhs_attack(preset):
    from theory.committee_derivation import symbolic_drift

    p = CommitteeParams(preset=preset, K=2, eps=1.0, eta_v=0.1)
    st = _state2(preset)
    sym = symbolic_drift(st, p)
    num = pack(drift(st, p, 56))
    assert np.max(np.abs(sym - num)) < COMMITTEE_SYMBOLIC_ATTACK, report("drift", num, sym)
    for variant in (dict(renormalise=False), dict(attack_in_average=False)):
        assert np.max(np.abs(sym - pack(drift(st, p, 56, **variant)))) > COMMITTEE_WRONG_MIN_GAP


def test_derivation_has_the_documented_terms():
    import sympy as sp

    from theory.committee_derivation import derive, eta_w

    d = derive(2, 1)
    e1, e2 = d["e"]
    u1, u2 = d["u"]
    (y1,) = d["y"]
    q = d["q"]
    R11 = d["R"][0, 0]
    Q12 = d["Q"][0, 1]
    assert sp.simplify(d["dR"][0, 0] - (-eta_w * e1 * y1 + eta_w * R11 * e1 * u1 - eta_w**2 / 2 * R11 * q * e1**2)) == 0
    want = (-eta_w * (e1 * u2 + e2 * u1) + eta_w * Q12 * (e1 * u1 + e2 * u2) + eta_w**2 * q * e1 * e2
            - eta_w**2 / 2 * Q12 * q * (e1**2 + e2**2))
    assert sp.simplify(d["dQ"][0, 1] - want) == 0


def test_errors_against_direct_sampling_of_the_fields():
    """E and S by the line-and-bisection quadrature against 4e5 Gaussian samples of the fields (5 standard
    errors + the quadrature's 3e-4)."""
    from theory.committee.ode import _output, attack_fields

    p = CommitteeParams(K=2, prior=0.7)
    st = State(np.array([[1, -0.3], [-0.3, 1]]), np.array([[0.4], [0.5]]), np.array([-0.5, -0.6]), np.array([0.5, 0.5]))
    E, S = errors(st, p, 1.0)
    rng = np.random.default_rng(0)
    mix = p.mixture()
    L = np.linalg.cholesky(st.Q)
    E_mc = S_mc = 0.0
    n = 400_000
    for c in range(2):
        lam = mix.means[c] @ st.R.T - st.b + np.sqrt(mix.variances[c]) * rng.standard_normal((n, 2)) @ L.T
        tau = mix.labels[c]
        E_mc += mix.priors[c] * np.mean(tau * _output(lam, st.v) <= 0)
        _, lt = attack_fields(lam, tau, st.Q, st.v, 1.0)
        S_mc += mix.priors[c] * np.mean(tau * _output(lt, st.v) <= 0)
    se = 0.5 / np.sqrt(n)
    assert abs(E - E_mc) < 5 * se + 3e-4 and abs(S - S_mc) < 5 * se + 3e-4, (E, E_mc, S, S_mc)


@pytest.mark.parametrize("K,n,tol", [(1, 48, 1e-9), (2, 14, 1e-3)])
def test_quadrature_converges(K, n, tol):
    """The drift with n and 2n Gauss-Hermite nodes per dimension (the convergence check behind GRID_NODES)."""
    for preset in ("talk", "xor"):
        p = CommitteeParams(preset=preset, K=K, eps=1.0)
        st = p.initial_state()
        st = State(st.Q, st.R + 0.1, st.b + 0.2, st.v)
        assert np.max(np.abs(pack(drift(st, p, n)) - pack(drift(st, p, 2 * n)))) < tol


@pytest.mark.parametrize("argv, name", [
    (["--K", "0"], "--K"),
    (["--K", "2", "--R0", "0.1"], "--R0"),
    (["--K", "2", "--Q0", "1,0;0,1;0,0"], "--Q0"),
    (["--K", "2", "--Q0", "1,2;2,1"], "--Q0"),
    (["--K", "2", "--R0", "0.9;0.9", "--Q0", "1,-0.9;-0.9,1"], "--Q0"),
    (["--eps", "-1"], "--eps"),
    (["--v1", "-1"], "--v1"),
    (["--prior", "1.2"], "--prior"),
    (["--pgd-steps", "0"], "--pgd-steps"),
    (["--preset", "ring"], "--preset"),
])
def test_bad_input_is_one_line_and_exit_2(argv, name, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv + ["--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and name in err, err


def test_params_validate_shapes_and_gram():
    with pytest.raises(ParameterError, match="R0"):
        CommitteeParams(K=3, R0=[[0.1], [0.2]])
    with pytest.raises(ParameterError, match="unit diagonal"):
        CommitteeParams(K=2, Q0=[[1.0, 0.2], [0.2, 0.9]])
    p = CommitteeParams(preset="xor", K=4)
    assert p.replace(K=2).initial_state().R.shape == (2, 2)
    assert p.key() == CommitteeParams(preset="xor", K=4).key()


def test_cli_table_and_outputs(tmp_path, capsys):
    out = tmp_path / "run.csv"
    assert main(["--preset", "talk", "--K", "2", "--alpha-max", "10", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "R[1,1]" in text and "final state" in text
    assert out.exists() and (tmp_path / "run.csv.json").exists()
    import json

    prov = json.loads((tmp_path / "run.csv.json").read_text())["provenance"]
    assert prov["params"]["K"] == 2 and "git_sha" in prov


def test_quick_figure_data_are_the_odes(tmp_path):
    pytest.importorskip("matplotlib")
    from figures.core import run_figure
    from figures import committee  # noqa: F401  (registers)
    from figures.core import REGISTRY
    import numpy as np

    paths = run_figure("committee_talk", quick=True, out_dir=tmp_path, log=lambda s: None)
    assert any(p.suffix == ".png" and p.stat().st_size > 10_000 for p in paths)
    with np.load(tmp_path / "quick" / "committee_talk.npz") as z:
        params = REGISTRY["committee_talk"].params(True)
        name = next(iter(params["cases"]))
        p = CommitteeParams(**params["cases"][name])
        traj = integrate_committee(p, z["alpha"], eps_test=params["eps_test"], error_alphas=[])
        assert np.max(np.abs(z[f"{name}/R[1,1]"] - traj.series()["R[1,1]"])) < 1e-12


def test_k1_fixed_point_is_the_linear_models():
    from theory import fixed_points
    from theory.committee import fixed_point

    p = CommitteeParams(K=1, prior=0.7, eps=1.0)
    lin = fixed_points(p.linear())[0]
    fp = fixed_point(np.array([0.9, 0.0, 1.0]), p)  # packed (R, b, v)
    assert fp is not None and fp.stable
    assert abs(fp.y[0] - lin.R) < 1e-7 and abs(fp.y[1] - lin.b) < 1e-7, (fp.y, lin)


def test_k4_errors_against_direct_sampling_of_the_fields():
    """K = 4 at the state that the large-learning-rate xor case (simulate.committee.mc.large_rate_case) reaches at
    alpha = 50 (units in antiparallel pairs, Q_12 = Q_34 = -0.94; entries rounded): E on the axis lines and S on the
    gradient lines, with the standard errors of their randomised outer rules, against Gaussian samples of the fields
    (E: 10^6 per cluster, S: 4 10^5 per cluster, through attack_fields), within q sqrt(se_rule^2 + se_MC^2), q the
    normal quantile Sidak-corrected over the two comparisons at the family-wise level COMMITTEE_QUAD_FAMILY_LEVEL.
    The former E (grad lines, 2^10 QMC points, bisection; 7e-4 low here) fails the same bound."""
    from scipy import stats

    from simulate.committee.mc import large_rate_case
    from theory.committee import attack_fields, errors_with_se, output

    p = large_rate_case()
    st = State(np.array([[1.0, -0.9412, -0.0137, -0.0135], [-0.9412, 1.0, -0.0139, -0.0136],
                         [-0.0137, -0.0139, 1.0, -0.9413], [-0.0135, -0.0136, -0.9413, 1.0]]),
               np.array([[0.9579, -0.0002], [-0.9574, -0.0002], [0.0004, 0.9575], [0.0004, -0.9572]]),
               np.array([0.5756, 0.5769, 0.5796, 0.5737]), np.array(p.v0))
    E, S, se_E, se_S = errors_with_se(st, p, p.eps)
    assert 0 < se_E < 2e-4 and 0 < se_S < 1e-3
    rng = np.random.default_rng(26)
    mix = p.mixture()
    L = np.linalg.cholesky(st.Q)
    mc = {}
    for name, eps, n in (("E", 0.0, 1_000_000), ("S", p.eps, 400_000)):
        mean = var = 0.0
        for c in range(len(mix.priors)):
            lam = mix.means[c] @ st.R.T - st.b + np.sqrt(mix.variances[c]) * rng.standard_normal((n, 4)) @ L.T
            _, lt = attack_fields(lam, mix.labels[c], st.Q, st.v, eps)
            P = np.mean(mix.labels[c] * output(lt, st.v) <= 0)
            mean += mix.priors[c] * P
            var += mix.priors[c] ** 2 * P * (1 - P) / n
        mc[name] = (mean, np.sqrt(var))
    q = stats.norm.ppf(1 - (1 - (1 - COMMITTEE_QUAD_FAMILY_LEVEL) ** 0.5) / 2)
    bound_E = q * np.hypot(se_E, mc["E"][1])
    bound_S = q * np.hypot(se_S, mc["S"][1])
    assert abs(E - mc["E"][0]) < bound_E, (E, mc["E"], bound_E)
    assert abs(S - mc["S"][0]) < bound_S, (S, mc["S"], bound_S)
    E_former = errors(st, p, 0.0, line="grad", n_outer="qmc:10")[0]
    assert abs(E_former - mc["E"][0]) > bound_E, (E_former, mc["E"], bound_E)
