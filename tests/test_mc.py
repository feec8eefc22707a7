"""Monte Carlo engine against the ODE theory, the reduced engine against the full one, fluctuations,
reproducibility, checkpoints and the command lines.

Tolerances (simulate.compare.TOLERANCES): the replica mean must lie within q standard errors of the ODE,
q Sidak-corrected over all comparisons of a test at family-wise level 1e-3, plus the finite-size allowance
c/N (c = 0.5, measured; see TOLERANCES).  Distribution tests (two-sample Kolmogorov-Smirnov) use a
Bonferroni level 1e-3 over the tests of one case.  Every statistical test has a fixed seed; its negative
control (a deliberately wrong ODE or engine) must fail the same check.
"""

import json
import math

import numpy as np
import pytest
from scipy import stats

from simulate.compare import TOLERANCES, check, sidak_quantile
from simulate.ode import integrate
from theory import ParameterError, Params, test_error

pytest.importorskip("numba", reason="numba is needed for the Monte Carlo engine")
from simulate import mc  # noqa: E402
from simulate.mc import run_mc  # noqa: E402

# the quadrature variants of the ODE are slow at the default tolerances; rtol 1e-7 keeps the solver error
# (~1e-6) far below the finite-size allowance c/N = 5e-3 of these tests
ODE_TOL = dict(rtol=1e-7, atol=1e-9)
ALPHAS12 = np.array([0, 1, 2, 5, 10, 15, 20, 30, 40, 50, 60, 80, 100.0])  # 12 values > 0
FAMILYWISE_KS = 1e-3

# variants the theory supports; the reduced engine is exact in law for each (isotropic clusters)
VARIANTS = {
    "talk1-adversarial": Params(),
    "talk2-standard": Params(prior=0.7, eps=0.0),
    "cross-entropy-exponential-eps": Params(loss="cross_entropy", eps_law="exponential", eps=0.5, v1=0.5, v2=2.0,
                                            R0=0.2, b0=0.3),
    "non-robust-only-uniform-eps": Params(non_robust_only=True, eps_law="uniform", erf_scale=math.sqrt(2.0),
                                          prior=0.6),
}


@pytest.fixture(scope="module")
def reduced_runs():
    return {name: run_mc(p, 100, 1000, ALPHAS12, seed=11, engine="reduced", progress=False)
            for name, p in VARIANTS.items()}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_reduced_engine_mean_agrees_with_ode(reduced_runs, name):
    res = reduced_runs[name]
    traj = integrate(res.params, res.alpha, eps_test=res.eps_test, **ODE_TOL)
    cmp = check(traj, res)
    assert cmp.m == 48
    assert cmp.passed, "\n".join(cmp.failures())


@pytest.mark.parametrize("name", ["talk1-adversarial", "talk2-standard"])
def test_wrong_ode_fails_the_same_check(reduced_runs, name):
    res = reduced_runs[name]
    wrong = integrate(res.params.replace(eta_w=1.1 * res.params.eta_w), res.alpha, eps_test=res.eps_test, **ODE_TOL)
    cmp = check(wrong, res)
    assert not cmp.passed
    assert len(cmp.failures()) >= 5  # not a marginal miss


@pytest.fixture(scope="module")
def full_run():
    return run_mc(Params(), 100, 200, ALPHAS12[ALPHAS12 <= 50], seed=5, engine="full", progress=False)


def test_full_engine_mean_agrees_with_ode(full_run):
    traj = integrate(full_run.params, full_run.alpha, eps_test=full_run.eps_test)
    cmp = check(traj, full_run)
    assert cmp.passed, "\n".join(cmp.failures())
    wrong = integrate(full_run.params.replace(eta_w=0.044), full_run.alpha, eps_test=full_run.eps_test)
    assert not check(wrong, full_run).passed


def test_initial_condition_is_the_odes():
    p = Params(R0=0.3, b0=-0.2)
    for engine in ("full", "reduced"):
        res = run_mc(p, 50, 4, [0.0, 0.1], seed=1, engine=engine, progress=False)
        np.testing.assert_allclose(res.R[0], 0.3, rtol=0, atol=1e-14)
        np.testing.assert_array_equal(res.b[0], -0.2)
        np.testing.assert_allclose(res.E[0], test_error(0.3, -0.2, p), rtol=1e-14)


def _ks_matrix(a, b, alphas_idx, quantities=("R", "b")):
    return {(q, i): stats.ks_2samp(a.values(q)[i], b.values(q)[i]).pvalue for q in quantities for i in alphas_idx}


KS_CASES = {"talk1-adversarial": VARIANTS["talk1-adversarial"],
            "cross-entropy-exponential-eps": VARIANTS["cross-entropy-exponential-eps"],
            "non-robust-only-uniform-eps": VARIANTS["non-robust-only-uniform-eps"]}


@pytest.mark.parametrize("name", list(KS_CASES))
def test_reduced_engine_has_the_law_of_the_full_engine_N200(name):
    p = KS_CASES[name]
    alphas = [0.0, 2.0, 5.0, 10.0]
    full = run_mc(p, 200, 300, alphas, seed=21, engine="full", progress=False)
    red = run_mc(p, 200, 2000, alphas, seed=22, engine="reduced", progress=False)
    pv = _ks_matrix(full, red, [1, 2, 3])
    level = FAMILYWISE_KS / len(pv)
    assert min(pv.values()) > level, pv
    # negative control: a reduced engine with the wrong learning rate is told apart
    wrong = run_mc(p.replace(eta_w=1.1 * p.eta_w), 200, 2000, alphas, seed=22, engine="reduced", progress=False)
    assert stats.ks_2samp(full.values("R")[3], wrong.values("R")[3]).pvalue < level


def _spread(engine, Ns, replicas, alpha, seed):
    out = {}
    for N in Ns:
        res = run_mc(Params(), N, replicas, [0.0, alpha], seed=seed, engine=engine, progress=False)
        out[N] = {q: float(res.std(q)[1]) for q in ("R", "b")}
    return out


def _assert_inverse_sqrt_scaling(spread, replicas):
    # sd estimated from M replicas has relative standard error ~ 1/sqrt(2(M-1)) (near-normal replicas);
    # a ratio of two has about sqrt(2) times that; 5 of those is the tolerance on sd_N sqrt(N) ratios
    tol = 5 * math.sqrt(2) / math.sqrt(2 * (replicas - 1))
    Ns = sorted(spread)
    for q in ("R", "b"):
        scaled = [spread[N][q] * math.sqrt(N) for N in Ns]
        for s in scaled[1:]:
            assert abs(math.log(s / scaled[0])) < tol, (q, scaled)
        slope = np.polyfit(np.log(Ns), np.log([spread[N][q] for N in Ns]), 1)[0]
        assert abs(slope + 0.5) < 0.1, (q, slope)  # -1/2, clearly not -1 or 0


def test_spread_shrinks_like_inverse_sqrt_N():
    replicas = 800
    _assert_inverse_sqrt_scaling(_spread("reduced", (250, 1000, 4000), replicas, 5.0, 31), replicas)


def test_same_seed_bit_identical_and_threads_do_not_matter():
    import numba

    p = Params(eps_law="halfnormal")
    a = run_mc(p, 64, 6, [0, 1, 3], seed=7, engine="full", progress=False, threads=1)
    b = run_mc(p, 64, 6, [0, 1, 3], seed=7, engine="full", progress=False, threads=numba.config.NUMBA_NUM_THREADS)
    c = run_mc(p, 64, 6, [0, 1, 3], seed=8, engine="full", progress=False)
    for q in ("R", "b", "E", "S"):
        assert np.array_equal(a.values(q), b.values(q))
    assert not np.any(a.R[1:] == c.R[1:])
    r1 = run_mc(p, 64, 6, [0, 1, 3], seed=7, engine="reduced", progress=False)
    r2 = run_mc(p, 64, 6, [0, 1, 3], seed=7, engine="reduced", progress=False)
    assert np.array_equal(r1.R, r2.R) and np.array_equal(r1.b, r2.b)
    # replicas are independent streams: no two replicas share a value
    assert np.unique(a.R[-1]).size == 6


@pytest.mark.parametrize("engine", ["full", "reduced"])
def test_resume_from_checkpoint_is_bit_identical(tmp_path, engine):
    p = Params(eps_law="exponential")
    alphas = [0.0, 1.0, 2.0, 4.0]
    whole = run_mc(p, 80, 3, alphas, seed=3, engine=engine, progress=False)
    ck = tmp_path / "run.npz"
    with pytest.raises(InterruptedError):
        run_mc(p, 80, 3, alphas, seed=3, engine=engine, progress=False, checkpoint=ck, stop_after_steps=150)
    assert ck.exists()
    resumed = run_mc(p, 80, 3, alphas, seed=3, engine=engine, progress=False, checkpoint=ck)
    for q in ("R", "b", "E", "S"):
        assert np.array_equal(whole.values(q), resumed.values(q))
    with pytest.raises(ParameterError, match="another run"):
        run_mc(p, 80, 3, alphas, seed=4, engine=engine, progress=False, checkpoint=ck)


def test_sampler_path_resumes_and_repeats(tmp_path):
    N = 40

    def sampler(rng, tau):
        xi = rng.standard_normal((tau.size, N))
        xi[:, 0] += tau
        return xi

    a = run_mc(Params(), N, 2, [0, 1, 2], seed=1, sampler=sampler, n_test=500, progress=False)
    ck = tmp_path / "s.npz"
    with pytest.raises(InterruptedError):
        run_mc(Params(), N, 2, [0, 1, 2], seed=1, sampler=sampler, n_test=500, progress=False, checkpoint=ck,
               stop_after_steps=50)
    b = run_mc(Params(), N, 2, [0, 1, 2], seed=1, sampler=sampler, n_test=500, progress=False, checkpoint=ck)
    assert np.array_equal(a.R, b.R) and np.array_equal(a.E, b.E)


def test_diagonal_covariance_and_sampler_agree():
    """A non-isotropic diagonal covariance two ways: the kernel's `variances`, and a user sampler.

    R and b must have the same law (KS), and E from the exact field variances (theory.errors with
    v_tau = sum_i w_i^2 var_tau,i) must match the sampler's held-out estimate within standard errors."""
    N, M = 60, 150
    rng = np.random.default_rng(0)
    var = np.stack([rng.uniform(0.3, 3.0, N), rng.uniform(0.3, 3.0, N)])
    B = np.zeros(N)
    B[:2] = 1 / math.sqrt(2)
    p = Params()

    def sampler(g, tau):
        sd = np.sqrt(np.where(tau[:, None] > 0, var[0], var[1]))
        return tau[:, None] * (p.rho / 2) * B + sd * g.standard_normal((tau.size, N))

    alphas = [0.0, 5.0, 10.0]
    diag = run_mc(p, N, M, alphas, seed=2, variances=var, B=B, progress=False)
    samp = run_mc(p, N, M, alphas, seed=3, sampler=sampler, B=B, n_test=4000, progress=False)
    pv = _ks_matrix(diag, samp, [1, 2])
    assert min(pv.values()) > FAMILYWISE_KS / len(pv), pv
    for i in (1, 2):
        d = diag.mean("E")[i] - samp.mean("E")[i]
        se = math.hypot(diag.se("E")[i], samp.se("E")[i], math.sqrt(0.25 / 4000))
        assert abs(d) < sidak_quantile(2) * se, (d, se)
    # the anisotropy matters: the isotropic theory (v = 1) does not describe this run
    iso = integrate(p, diag.alpha, eps_test=diag.eps_test)
    assert not check(iso, diag).passed


def test_budgets_are_drawn_by_inversion_of_the_law():
    keys = np.arange(1, 5, dtype=np.uint64)
    for law in ("uniform", "exponential", "halfnormal"):
        e, used = mc.eps_chunk(Params(eps_law=law, eps=0.7), keys, 0, 20000)
        assert used and e.shape == (4, 20000)
        assert abs(e.mean() - 0.7) < 5 * e.std() / math.sqrt(e.size)  # E[eps_example] = eps
    e, used = mc.eps_chunk(Params(eps=0.7), keys, 0, 10)
    assert not used


@pytest.mark.parametrize("kwargs,match", [
    (dict(N=1), "N must be"), (dict(replicas=0), "replicas must be"), (dict(engine="fast"), "engine must be"),
    (dict(seed=-1), "seed must be"), (dict(eps_test=-1.0), "eps_test"),
    (dict(engine="reduced", variances=np.ones(10)), "engine='full'"),
    (dict(variances=np.ones(9)), "variances must be"), (dict(variances=-np.ones(10)), "variances must be"),
    (dict(B=np.ones(10)), "unit vector"), (dict(alphas=[2.0, 1.0]), "alphas"),
])
def test_bad_input_names_the_parameter(kwargs, match):
    args = dict(N=10, replicas=2, alphas=[0, 1], progress=False)
    args.update(kwargs)
    with pytest.raises(ParameterError, match=match):
        run_mc(Params(), **args)


# --------------------------------------------------------------------------------------------------
# command lines
# --------------------------------------------------------------------------------------------------
def test_cli_writes_csv_and_json_with_provenance(tmp_path, capsys):
    out = tmp_path / "mc.csv"
    assert mc.main(["--rho", "2", "--eps", "1", "--N", "50", "--replicas", "4", "--alpha-max", "3",
                    "--alpha-step", "1", "--out", str(out), "--quiet"]) == 0
    rows = out.read_text().splitlines()
    assert rows[0] == "alpha,R_mean,R_se,b_mean,b_se,E_mean,E_se,S_mean,S_se" and len(rows) == 5
    prov = json.loads((tmp_path / "mc.csv.json").read_text())["provenance"]
    assert prov["params"]["rho"] == 2 and prov["seeds"]["root_seed"] == 0 and prov["N"] == 50 and prov["git_sha"]
    js = tmp_path / "mc.json"
    assert mc.main(["--N", "50", "--replicas", "4", "--alpha-max", "3", "--engine", "reduced", "--out", str(js)]) == 0
    data = json.loads(js.read_text())
    assert len(data["result"]["R"]["values"]) == 2 and len(data["result"]["R"]["values"][0]) == 4  # alpha 0, 3
    assert "R" in capsys.readouterr().out


def test_cli_checkpoint_resume(tmp_path):
    ck = tmp_path / "c.npz"
    args = ["--N", "40", "--replicas", "3", "--alpha-max", "2", "--alpha-step", "1", "--quiet", "--checkpoint", str(ck)]
    assert mc.main(args + ["--out", str(tmp_path / "a.csv")]) == 0
    assert not ck.exists()  # a finished run removes its checkpoint
    # stopped after its first chunk (exit 75, checkpoint kept), then resumed: the uninterrupted result
    assert mc.main(args + ["--out", str(tmp_path / "b.csv"), "--time-limit", "1e-9"]) == 75
    assert ck.exists()
    assert mc.main(args + ["--out", str(tmp_path / "b.csv")]) == 0
    assert not ck.exists()
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    assert mc.main(["--N", "40", "--replicas", "3", "--alpha-max", "2", "--alpha-step", "1", "--quiet", "--seed", "1",
                    "--out", str(tmp_path / "c.csv")]) == 0
    assert (tmp_path / "a.csv").read_text() != (tmp_path / "c.csv").read_text()


@pytest.mark.parametrize("argv,flag", [
    (["--N", "1"], "--N"), (["--replicas", "0"], "--replicas"), (["--rho", "-1"], "--rho"),
    (["--prior", "1.5"], "--prior"), (["--eps", "-0.1"], "--eps"), (["--alpha-max", "0"], "--alpha-max"),
    (["--eps-test", "-1"], "--eps-test"), (["--out", "x.txt"], "--out"), (["--engine", "fast"], "--engine"),
    (["--variances", "missing.npy"], "--variances"), (["--checkpoint-every", "0"], "--checkpoint-every"),
])
def test_cli_bad_input_exits_2_with_one_line(argv, flag, capsys):
    with pytest.raises(SystemExit) as exc:
        mc.main(argv + ["--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err


def test_cli_diagonal_variances(tmp_path):
    var = tmp_path / "v.npy"
    np.save(var, np.linspace(0.5, 2.0, 30))
    assert mc.main(["--N", "30", "--replicas", "2", "--alpha-max", "1", "--variances", str(var), "--quiet"]) == 0
    with pytest.raises(SystemExit) as exc:
        mc.main(["--N", "31", "--replicas", "2", "--alpha-max", "1", "--variances", str(var), "--quiet"])
    assert exc.value.code == 2


def test_compare_cli(tmp_path, capsys):
    from simulate import compare

    out = tmp_path / "cmp.json"
    assert compare.main(["--N", "100", "--replicas", "400", "--engine", "reduced", "--alpha-max", "20",
                         "--alpha-step", "5", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "consistent" in text and "z" in text
    data = json.loads(out.read_text())
    assert data["passed"] and len(data["R"]["z"]) == 4 and data["m"] == 16
    # --strict exits 0 when the check passes (the failing direction is covered by the wrong-ODE tests)
    assert compare.main(["--N", "100", "--replicas", "400", "--engine", "reduced", "--alpha-max", "20",
                         "--alpha-step", "5", "--strict", "--quiet"]) == 0


def test_sidak_quantile():
    assert sidak_quantile(1, 0.05) == pytest.approx(1.959964, abs=1e-6)
    q = sidak_quantile(48, TOLERANCES["familywise"])
    assert 1 - (1 - 2 * stats.norm.sf(q)) ** 48 == pytest.approx(1e-3, rel=1e-9)
