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
    d, n = 30, 120_000
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


# ---------------------------------------------------------------------------------------------------
# The Monte Carlo engine
# ---------------------------------------------------------------------------------------------------
numba = pytest.importorskip("numba")

from simulate.cli import UNFINISHED  # noqa: E402
from simulate.mc import Execution, Unfinished  # noqa: E402
from simulate.multinorm.command import main  # noqa: E402
from simulate.multinorm.mc import QUANTITIES, initial_weights, run_multinorm_mc  # noqa: E402

from .tolerances import MULTINORM_PLAIN_BIAS_C, MULTINORM_STD_BIAS_C  # noqa: E402


def test_initial_state():
    p = MultinormParams(w0=-0.3)
    w = initial_weights(p, 500, np.random.SeedSequence(1))
    assert w[0] == -0.3 and np.linalg.norm(w) == pytest.approx(1.0, abs=1e-14)
    u = w[1:] * math.sqrt(500)
    assert abs(u.var() - 0.91) < 0.15 and abs(u.mean()) < 0.15  # i.i.d. Gaussian, Q = 1 - w0^2
    r = run_multinorm_mc(p, 500, 3, [0.0], 1, progress=False)
    assert np.all(r.data["w0"][0] == -0.3) and np.all(r.data["b"][0] == 0.0)
    assert np.allclose(r.data["Q"][0], 0.91, atol=1e-12)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_same_seed_same_result_and_threads_do_not_matter(scheme):
    p = MultinormParams(scheme=scheme)
    a = run_multinorm_mc(p, 40, 3, [0, 1, 3], 5, progress=False, threads=1)
    b = run_multinorm_mc(p, 40, 3, [0, 1, 3], 5, progress=False)
    c = run_multinorm_mc(p, 40, 3, [0, 1, 3], 6, progress=False)
    for q in QUANTITIES:
        assert np.array_equal(a.data[q], b.data[q]), q
    assert not np.array_equal(a.data["w0"], c.data["w0"])


def test_more_replicas_extend_a_run_bit_for_bit():
    """Replica r's trajectory does not depend on how many replicas run (SeedSequence.spawn), so a run with more
    replicas extends a stored one: its first replicas are those of the smaller run, bit for bit."""
    p = MultinormParams(scheme="max")
    small = run_multinorm_mc(p, 40, 2, [0, 1, 3], 5, progress=False)
    large = run_multinorm_mc(p, 40, 5, [0, 1, 3], 5, progress=False)
    for q in QUANTITIES:
        assert np.array_equal(small.data[q], large.data[q][:, :2]), q


def test_endstates_check_prefix(tmp_path, capsys):
    """endstates --check-prefix: a run with more replicas and alphas reproduces the stored one's statistics
    bit for bit (recorded per run); a stored file changed by one ulp, or of other parameters, is refused."""
    import json

    from simulate.multinorm import endstates

    base = ["--d", "30", "--alpha-max", "2", "--schemes", "std", "sat", "--threads", "1", "--quiet"]
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    assert endstates.main(base + ["--replicas", "2", "--out", str(old)]) == 0
    argv = ["--d", "30", "--alpha-max", "3", "--schemes", "std", "sat", "adv_1", "--threads", "1", "--quiet",
            "--replicas", "3", "--check-prefix", str(old)]
    assert endstates.main(argv + ["--out", str(new)]) == 0
    runs = json.loads(new.read_text())["runs"]["30"]
    assert runs["std"]["prefix_check"] == runs["sat"]["prefix_check"] == {"replicas": 2, "alphas": 3,
                                                                          "identical": True}
    assert "prefix_check" not in runs["adv_1"]
    data = json.loads(old.read_text())
    data["runs"]["30"]["sat"]["L1"][2] = np.nextafter(data["runs"]["30"]["sat"]["L1"][2], 2.0)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    capsys.readouterr()
    argv[argv.index(str(old))] = str(bad)
    assert endstates.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "sat" in err and "L1" in err, err
    with pytest.raises(SystemExit) as exit_info:
        endstates.main(argv + ["--e", "3"])
    assert exit_info.value.code == 2 and "--check-prefix" in capsys.readouterr().err


@pytest.mark.parametrize("scheme", ["sat", "avg"])
def test_resume_from_checkpoint_is_bit_identical(tmp_path, scheme):
    p = MultinormParams(scheme=scheme)
    alphas = [0, 1, 2.5, 4]
    whole = run_multinorm_mc(p, 30, 2, alphas, 3, progress=False)
    ck = tmp_path / "run.npz"
    with pytest.raises(Unfinished):
        run_multinorm_mc(p, 30, 2, alphas, 3, execution=Execution(progress=False, checkpoint=ck, stop_after_steps=47))
    with pytest.raises(Unfinished):  # a second stop in the middle of the resumed run
        run_multinorm_mc(p, 30, 2, alphas, 3, execution=Execution(progress=False, checkpoint=ck, stop_after_steps=29))
    resumed = run_multinorm_mc(p, 30, 2, alphas, 3, execution=Execution(progress=False, checkpoint=ck))
    for q in QUANTITIES:
        assert np.array_equal(whole.data[q], resumed.data[q]), q
    with pytest.raises(ParameterError, match="another run"):
        run_multinorm_mc(p.replace(eps1=1.0), 30, 2, alphas, 3, execution=Execution(progress=False, checkpoint=ck))


def test_recorded_errors_are_those_of_the_weights():
    """E, S_inf, S_1, union of a run are errors() of its recorded order parameters, and |w| = 1."""
    from theory.multinorm import State
    p = MultinormParams(scheme="max")
    r = run_multinorm_mc(p, 60, 2, [0, 2], 8, progress=False)
    s = State(**{k: r.data[k][-1] for k in ("w0", "b", "ubar", "Q", "L1", "wmax")})
    for k, v in errors(s, p, 60).items():
        assert np.array_equal(v, r.data[k][-1])
    assert np.allclose(r.data["Q"] + r.data["w0"] ** 2, 1.0, atol=1e-12)


def _plain_run(p: MultinormParams, d: int, replicas: int, alpha: float, seed: int):
    """The plain numba loop of simulate.kernels.multinorm (explicit attack vectors, np.random, explicit
    renormalisation): the final order parameters of every replica."""
    from simulate.kernels.multinorm import SCHEME_CODES, plain_steps, seed_plain
    N = d + 1
    steps = int(round(alpha * N))
    rows = []
    for r in range(replicas):
        seed_plain(seed + r)
        w = initial_weights(p, d, np.random.SeedSequence([seed, r]))
        b = plain_steps(w, 0.0, steps, SCHEME_CODES[p.scheme], p.a, p.p0, p.e, p.eps1, p.eps2, p.eta_w, p.eta_b,
                        {"quadratic": 0, "cross_entropy": 1}[p.loss])
        st = state_from_weights(w, b)
        rows.append([float(st.w0), b, float(st.ubar), float(st.L1)] + [float(v) for v in errors(st, p, d).values()])
    return np.array(rows)


@pytest.mark.parametrize("scheme, loss", [(s, "quadratic") for s in SCHEMES] + [("max", "cross_entropy"),
                                                                                  ("avg", "cross_entropy")])
def test_kernel_agrees_with_the_plain_loop(scheme, loss):
    """The fused kernel against the independent plain loop (same model, other random numbers, attack vectors
    built explicitly): replica means of w0, b, ubar, L1 and the four errors at alpha = 6, d = 40, within the
    Sidak-corrected Welch quantile (no finite-size allowance: both simulate the same finite-d process).
    The schemes differ strongly by then (adv_inf drives w0 to ~1, adv_1 to ~0), so a swapped or mis-signed
    attack fails."""
    p = MultinormParams(scheme=scheme, loss=loss, e=3.0, eps1=1.5, eta_w=0.5, eta_b=0.3)
    d, M, alpha = 40, 96, 6.0
    mc = run_multinorm_mc(p, d, M, [0.0, alpha], 11, progress=False)
    a = np.stack([mc.data[k][-1] for k in ("w0", "b", "ubar", "L1", "E", "S_inf", "S_1", "union")], axis=1)
    b = _plain_run(p, d, M, mc.alpha[-1], 1000)
    se = np.sqrt(a.var(0, ddof=1) / M + b.var(0, ddof=1) / M)
    q = sidak_quantile(a.shape[1], MULTINORM_FAMILYWISE)
    dev = np.abs(a.mean(0) - b.mean(0))
    ok = dev <= q * se + MULTINORM_PLAIN_BIAS_C * 1e-12
    assert np.all(ok), report(f"{scheme} kernel vs plain loop (w0 b ubar L1 E S_inf S_1 union), q={q:.2f}",
                              a.mean(0), b.mean(0)) + f"; z = {dev / se}"


def test_std_and_adv_2_reduce_to_the_l2_ode():
    """Where the existing l_2 machinery applies: p0 = 1/2 makes x_0 pure noise and w0(0) = 0 keeps its weight
    O(1/sqrt d), so the data are the Gaussian mixture of theory.ode with B = (0, 1, ..., 1)/sqrt(d),
    rho = 2a, prior 1/2, v = 1, R = ubar, and adv_2 is its l_2 attack of budget eps2.  Replica means of
    R = ubar and b against simulate.ode within q se + c/N (q Sidak over all compared values; c as in
    tests/tolerances.py)."""
    from simulate.ode import integrate
    from theory.params import Params
    d, M = 400, 24
    alphas = [0.0, 2.0, 5.0, 10.0, 20.0]
    comparisons = []
    for scheme, eps in (("std", 0.0), ("adv_2", 0.7)):
        p = MultinormParams(scheme=scheme, p0=0.5, w0=0.0, a=1.0, eps2=eps, eta_w=0.5, eta_b=0.5)
        mc = run_multinorm_mc(p, d, M, alphas, 2, progress=False)
        ode = integrate(Params(rho=2 * p.a, prior=0.5, eta_w=p.eta_w, eta_b=p.eta_b, eps=eps, R0=0.0, b0=0.0),
                        alphas=mc.alpha)
        for q_mc, q_ode in (("ubar", ode.R), ("b", ode.b)):
            comparisons.append((f"{scheme} {q_mc}", mc.mean(q_mc)[1:], mc.se(q_mc)[1:], np.asarray(q_ode)[1:]))
    q = sidak_quantile(sum(c[1].size for c in comparisons), MULTINORM_FAMILYWISE)
    for name, mean, se, ref in comparisons:
        assert np.all(np.abs(mean - ref) <= q * se + MULTINORM_STD_BIAS_C / (d + 1)), report(name, mean, ref)


def test_wrong_model_fails_the_l2_ode_check():
    """The same check fails when the MC trains on l_2 while the ODE has no attack (the check can fail)."""
    from simulate.ode import integrate
    from theory.params import Params
    d, M = 400, 24
    p = MultinormParams(scheme="adv_2", p0=0.5, w0=0.0, a=1.0, eps2=0.7, eta_w=0.5, eta_b=0.5)
    mc = run_multinorm_mc(p, d, M, [0.0, 5.0, 20.0], 2, progress=False)
    ode = integrate(Params(rho=2.0, prior=0.5, eta_w=0.5, eta_b=0.5, eps=0.0), alphas=mc.alpha)
    q = sidak_quantile(2, MULTINORM_FAMILYWISE)
    assert np.any(np.abs(mc.mean("ubar")[1:] - np.asarray(ode.R)[1:]) > q * mc.se("ubar")[1:]
                  + MULTINORM_STD_BIAS_C / (d + 1))


def test_u_histogram():
    bins = np.linspace(-4, 4, 33)
    r = run_multinorm_mc(MultinormParams(), 200, 2, [0, 1], 0, u_bins=bins, progress=False)
    assert r.u_hist.shape == (2, 32) and np.all(np.isfinite(r.u_hist))
    assert (r.u_hist[0] * np.diff(bins)).sum() == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("kwargs, match", [({"d": 1}, "^d must"), ({"d": math.inf}, "^d must"),
                                           ({"replicas": 0}, "^replicas"), ({"seed": -1}, "^seed"),
                                           ({"alphas": [1, 0]}, "alphas")])
def test_bad_run_settings_name_the_setting(kwargs, match):
    args = {"d": 20, "replicas": 2, "alphas": [0, 1], "seed": 0, **kwargs}
    with pytest.raises(ParameterError, match=match):
        run_multinorm_mc(MultinormParams(), args["d"], args["replicas"], args["alphas"], args["seed"], progress=False)


# ---------------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------------
ARGS = ["--engine", "mc", "--d", "30", "--replicas", "2", "--alpha-max", "3", "--seed", "4", "--quiet"]


def test_cli_writes_json_with_keys_and_provenance(tmp_path, capsys):
    import json
    out = tmp_path / "r.json"
    assert main([*ARGS, "--scheme", "max", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert len(data["alphas"]) == 4
    for k in ("w0", "b", "ubar", "L1", "E", "S_inf", "S_1", "union"):
        assert len(data[k]) == 4 and len(data[k + "_se"]) == 4
    prov = data["provenance"]
    assert prov["params"]["scheme"] == "max" and prov["seeds"]["root_seed"] == 4 and "git_sha" in prov
    direct = run_multinorm_mc(MultinormParams(scheme="max"), 30, 2, data["alphas"], 4, progress=False)
    assert data["union"] == direct.mean("union").tolist()
    # refuses to overwrite without --overwrite, one line, exit 2
    with pytest.raises(SystemExit) as exc:
        main([*ARGS, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "--overwrite" in err[0]
    assert main([*ARGS, "--out", str(out), "--overwrite"]) == 0


def test_cli_prints_a_table(capsys):
    assert main([a for a in ARGS if a != "--quiet"] + ["--scheme", "sat"]) == 0
    out = capsys.readouterr().out
    assert "union" in out.splitlines()[1] and len(out.splitlines()) >= 5


def test_cli_stop_and_resume(tmp_path, capsys):
    import json
    whole, out, ck = tmp_path / "w.json", tmp_path / "r.json", tmp_path / "r.npz"
    assert main([*ARGS, "--out", str(whole)]) == 0
    cmd = [*ARGS, "--out", str(out), "--checkpoint", str(ck)]
    assert main([*cmd, "--time-limit", "1e-9"]) == UNFINISHED
    assert main(cmd) == 0
    assert json.loads(whole.read_text())["w0"] == json.loads(out.read_text())["w0"]


@pytest.mark.parametrize("argv, flag", [(["--p0", "1.5"], "--p0"), (["--scheme", "msd"], "--scheme"),
                                        (["--d", "x"], "--d"), (["--d", "inf", "--engine", "mc"], "--d"),
                                        (["--d", "1", "--engine", "mc"], "--d"), (["--replicas", "0"], "--replicas"),
                                        (["--alpha-max", "-1"], "--alpha-max"), (["--eta-w", "nan"], "--eta-w"),
                                        (["--w0", "1"], "--w0"), (["--engine", "gpu"], "--engine"),
                                        (["--checkpoint", "x.npz", "--engine", "theory"], "checkpoint"),
                                        (["--out", "x.csv"], "--out")])
def test_cli_bad_input_exits_2_with_one_line(argv, flag, capsys):
    base = ["--engine", "mc", "--d", "30", "--quiet"]
    with pytest.raises(SystemExit) as exc:
        main(base + argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and flag in err[0], err
    assert "Traceback" not in err[0]


def test_sweep_engine(tmp_path):
    """simulate.sweep over multinorm fields and d: each point equals run_multinorm_mc with its point seed."""
    import xarray as xr

    from simulate.multinorm.sweep_engine import point_seed
    from simulate.sweep import main as sweep_main
    out = tmp_path / "s.nc"
    assert sweep_main(["--engine", "multinorm_mc", "--grid", "scheme=avg,max", "--grid", "d=20,30", "--alphas", "1,2",
                       "--replicas", "2", "--eps1", "1.5", "--out", str(out), "--quiet"]) == 0
    ds = xr.open_dataset(out)
    p = MultinormParams(scheme="max", eps1=1.5)
    direct = run_multinorm_mc(p, 30, 2, [0, 1, 2], point_seed(0, p, 30), progress=False)
    got = ds.sel(scheme="max", d=30)
    assert np.array_equal(got["union"].values, direct.mean("union")[1:])
    assert np.array_equal(got["w0_alpha_se"].values, direct.se("w0")[1:])
    ds.close()


def test_figure_quick_plots_the_simulation(tmp_path):
    """figures.multinorm --quick: the image is written and its Monte Carlo points are run_multinorm_mc's."""
    pytest.importorskip("matplotlib")
    from figures.core import run_figure
    from figures.multinorm import multinorm_params
    import figures.multinorm  # noqa: F401  (registers the figure)
    paths = run_figure("multinorm", quick=True, out_dir=tmp_path, log=lambda s: None)
    assert all(p.stat().st_size > 10_000 for p in paths)
    prm = multinorm_params(True)
    with np.load(tmp_path / "quick" / "multinorm.npz") as npz:
        data = {k: npz[k] for k in npz.files}
    k = SCHEMES.index("max")
    seed = int(np.random.SeedSequence([prm["seed"], k]).generate_state(1, np.uint64)[0])
    alphas = np.unique(np.concatenate([prm["mc_alphas"], prm["law_alphas"]]))
    res = run_multinorm_mc(MultinormParams(scheme="max"), prm["d"], prm["replicas"], alphas, seed, progress=False)
    assert np.array_equal(data["max/mc_acc_union"], 1.0 - res.mean("union"))
    assert np.array_equal(data["max/mc_w0_se"], res.se("w0"))
    assert data["adv_inf/mc_hist"].shape == (len(prm["law_alphas"]), prm["u_bins"][2] - 1)


def test_cli_theory_engine_writes_the_solvers_trajectory(tmp_path):
    """--engine theory: the lists of theory.multinorm.solve (the moment ODE of std at d = inf)."""
    import json
    from theory.multinorm import solve
    out = tmp_path / "t.json"
    assert main(["--scheme", "std", "--d", "inf", "--alpha-max", "3", "--method", "moments", "--quiet",
                 "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    ref = solve(MultinormParams(scheme="std"), np.array(data["alphas"]), math.inf, method="moments")
    for k in ("w0", "b", "ubar", "L1", "E", "S_inf", "S_1", "union"):
        assert np.allclose(data[k], ref[k], rtol=0, atol=1e-12), k
    assert "E_se" not in data and data["engine"] == "theory"


# ---------------------------------------------------------------------------------------------------
# How the command ends: disk full, Ctrl-C / SIGTERM (the shared endings of simulate.core.cli.command)
# ---------------------------------------------------------------------------------------------------
def test_cli_disk_full_is_one_line_and_keeps_the_previous_result(tmp_path, capsys, monkeypatch):
    import errno
    import os

    out = tmp_path / "r.json"
    argv = ["--scheme", "std", "--d", "inf", "--alpha-max", "1", "--method", "moments", "--quiet",
            "--out", str(out)]
    assert main(argv) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real = os.replace

    def replace(src, dst):
        if os.path.dirname(os.path.abspath(dst)) == str(tmp_path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    capsys.readouterr()
    assert main([*argv, "--w0", "0.3", "--overwrite"]) == 74
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and str(out) in err[0], err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no lock, no temporary left


def _signal_run(args, tmp_path, sig, ready):
    """Start ``python -m simulate.multinorm ARGS`` in tmp_path, send sig once ready() holds; (rc, stderr lines)."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "simulate.multinorm", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready():
            assert proc.poll() is None, f"ended early ({proc.returncode}): {proc.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "the run never reached the point of the signal"
            time.sleep(0.02)
        proc.send_signal(sig)
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return rc, [line for line in proc.stderr.read().splitlines() if line.strip()]


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_cli_signal_saves_the_checkpoint_and_exits_75(tmp_path, sig):
    import signal

    ck = tmp_path / "c.npz"
    args = ["--engine", "mc", "--scheme", "max", "--d", "1000", "--replicas", "2", "--alpha-max", "2000",
            "--alpha-step", "500", "--quiet", "--checkpoint", str(ck), "--checkpoint-every", "0.001",
            "--out", str(tmp_path / "r.json")]
    rc, err = _signal_run(args, tmp_path, getattr(signal, sig), ck.exists)
    assert rc == UNFINISHED, err
    assert len(err) == 1 and "Traceback" not in err[0] and "checkpoint written" in err[0] and str(ck) in err[0], err
    assert ck.exists() and not (tmp_path / "r.json").exists()


def test_cli_ctrl_c_without_checkpoint_exits_130(tmp_path):
    """Ctrl-C during the theory's solve (no checkpoint to save): one line, exit 130, no file.  The signal is sent
    once the command holds the lock of its --out (taken after the checks, before the solve)."""
    import signal

    out = tmp_path / "r.json"
    args = ["--scheme", "max", "--d", "1000", "--alpha-max", "10000", "--alpha-step", "100", "--quiet",
            "--out", str(out)]
    rc, err = _signal_run(args, tmp_path, signal.SIGINT, out.with_name(f".{out.name}.lock").exists)
    assert rc == 130, err
    assert len(err) == 1 and "Traceback" not in err[0] and "stopped by Ctrl-C" in err[0], err
    assert not (tmp_path / "r.json").exists()


def test_bench_runs_and_writes_its_ratio_row(tmp_path, capsys):
    """bench/multinorm.py stays runnable: a tiny run writes the kernel and plain-loop rows, their ratio and the
    provenance (the timings themselves are the benchmark's, not the test's)."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "bench" / "multinorm.py"
    spec = importlib.util.spec_from_file_location("bench_multinorm", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "b.json"
    assert bench.main(["--d", "300", "--steps", "5", "--repeats", "1", "--schemes", "sat", "--theory-schemes",
                       "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    names = {r["name"].split()[0] for r in data["rows"]}
    assert names == {"plain", "kernel"} and data["ratios"]["sat"]["kernel / plain (1 thread each)"] > 0
    assert data["provenance"]["git_sha"] and data["theory"] == []
