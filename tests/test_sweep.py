"""Sweeps: backends agree, interrupted sweeps resume exactly, a killed dask worker loses nothing, bad specs exit 2.

Tolerances: backends and resumed runs must give bit-identical data sets (the blocks of points are fixed by
the chunk size, so every backend does the same floating-point operations); the ODE engine against the
scalar integrator of simulate.ode and theory.ode.fixed_points within SWEEP_VS_SCALAR (both solve to
rtol 1e-8 or better); the Monte Carlo engine against the ODE within a Sidak-corrected q se + c/N, as
simulate.compare does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

xr = pytest.importorskip("xarray")
distributed = pytest.importorskip("distributed")
pytest.importorskip("h5netcdf")

from simulate import sweep  # noqa: E402
from simulate.compare import TOLERANCES, sidak_quantile  # noqa: E402
from simulate.ode import integrate  # noqa: E402
from simulate.sweep_engines import get_engine  # noqa: E402
from theory import Params, drift, fixed_points  # noqa: E402
from tests.tolerances import SWEEP_VS_SCALAR, report  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BASE = Params(prior=0.7)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


def _grid(specs, engine="ode", base=BASE, **extra):
    return sweep.make_grid(specs, base, get_engine(engine), extra)


def _same(a, b) -> bool:
    return a.drop_attrs().identical(b.drop_attrs()) and a.attrs["sweep_signature"] == b.attrs["sweep_signature"]


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=40, env={"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"})
    cl = Client(cluster)
    yield cl
    cl.close()
    cluster.close()


SPECS = ["rho=1:3:4", "eps=0,0.7,1.5"]


def test_ode_engine_matches_scalar_integrator_and_fixed_points():
    ds, _ = sweep.run_sweep("ode", _grid(SPECS), {"alphas": [50.0, 200.0]}, chunk=5, progress=False)
    for rho in (1.0, 3.0):
        for eps in (0.0, 1.5):
            p = BASE.replace(rho=rho, eps=eps)
            traj = integrate(p, [0.0, 50.0, 200.0], eps_test=1.0)
            pt = ds.sel(rho=rho, eps=eps)
            for q in ("R", "b", "E", "S"):
                got, exp = pt[q].values, getattr(traj, q)[1:]
                assert np.allclose(got, exp, atol=SWEEP_VS_SCALAR, rtol=0), report(q, got, exp)
            if float(pt.stable) == 1.0:
                fp = fixed_points(p, starts=[(float(traj.R[-1]), float(traj.b[-1]))])[0]
                assert abs(float(pt.R_fp) - fp.R) < SWEEP_VS_SCALAR and abs(float(pt.b_fp) - fp.b) < SWEEP_VS_SCALAR
                assert abs(float(pt.ev_max) - max(e.real for e in fp.eigenvalues)) < 1e-6
    # the baseline is standard training at the same point: dS vanishes at eps = 0
    assert np.all(np.abs(ds.dS.sel(eps=0.0).values) < SWEEP_VS_SCALAR)
    # a wrong variant (the baseline compared at another test budget) must fail the same check
    ds_wrong, _ = sweep.run_sweep("ode", _grid(SPECS), {"alphas": [200.0], "eps_test": 0.5}, chunk=5, progress=False)
    assert not np.allclose(ds_wrong.S.isel(alpha=-1).values, ds.S.isel(alpha=-1).values, atol=1e-3)


def test_random_budget_drift_matches_theory():
    """theory.ode.drift with an array of mean budgets (scaled nodes of the mean-1 law) equals the same drift
    at each scalar budget (the nodes of that mean budget)."""
    R, b = np.array([0.2, 0.7, -0.3]), np.array([0.1, -0.4, 0.8])
    eps = np.array([0.3, 1.0, 1.7])
    kw = dict(rho=2.0, prior=0.7, v1=1.0, v2=1.3, eta_w=0.04, eta_b=0.2, loss="quadratic")
    for law in ("uniform", "exponential", "halfnormal"):
        got = np.array(drift(R, b, eps=eps, eps_law=law, **kw))
        exp = np.array([drift(R[i], b[i], eps=eps[i], eps_law=law, **kw) for i in range(3)]).T
        assert np.allclose(got, exp, atol=1e-13, rtol=0), report(law, got, exp)


def test_dask_local_cluster_equals_serial(client, tmp_path, capsys):
    grid = _grid(SPECS)
    serial, st = sweep.run_sweep("ode", grid, {}, chunk=3, progress=False)
    assert st.computed_points == grid.size == 12 and st.blocks == 4
    dsk, _ = sweep.run_sweep("ode", grid, {}, chunk=3, backend="dask", client=client, progress=False)
    assert _same(serial, dsk)
    # the CLI with --scheduler (an existing cluster) writes the same data set
    out = tmp_path / "d.nc"
    addr = client.scheduler.address
    argv = ["--grid", SPECS[0], "--grid", SPECS[1], "--prior", "0.7", "--chunk", "3", "--scheduler", addr,
            "--out", str(out), "--quiet"]
    assert sweep.main(argv) == 0
    assert _same(serial, sweep.open_result(out))
    # a deliberately different sweep (another test budget) is not the same data set
    other, _ = sweep.run_sweep("ode", grid, {"eps_test": 0.5}, chunk=3, backend="dask", client=client, progress=False)
    assert not _same(serial, other)


def test_process_pool_equals_serial():
    grid = _grid(["rho=1,2", "eps=0,1"])
    a, _ = sweep.run_sweep("ode", grid, {}, chunk=1, progress=False)
    b, _ = sweep.run_sweep("ode", grid, {}, chunk=1, backend="processes", workers=2, progress=False)
    assert _same(a, b)


def test_killed_sweep_resumes_and_computes_only_the_missing_points(tmp_path, capsys):
    out = tmp_path / "phase.nc"
    argv = ["--grid", "rho=1:3:6", "--grid", "eps=0,1", "--prior", "0.7", "--chunk", "1", "--out", str(out),
            "--quiet"]
    parts = out.with_name(out.name + ".parts")
    proc = subprocess.Popen([sys.executable, "-m", "simulate.sweep", *argv, "--throttle", "0.4"], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(parts.glob("block_*.npz"))) < 3:
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    stored = len(list(parts.glob("block_*.npz")))
    assert 3 <= stored < 12 and not out.exists()
    assert sweep.main([a for a in argv if a != "--quiet"]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("# sweep")][0]
    assert f"computed {12 - stored}, reused {stored}" in line, line
    full, _ = sweep.run_sweep("ode", _grid(["rho=1:3:6", "eps=0,1"]), {}, chunk=1, progress=False)
    resumed = sweep.open_result(out)
    assert _same(full, resumed)
    assert not parts.exists()
    # the same command once more computes nothing
    assert sweep.main([a for a in argv if a != "--quiet"]) == 0
    assert "computed 0, reused 12" in capsys.readouterr().out


def test_blocks_of_another_sweep_are_refused(tmp_path, capsys):
    out = tmp_path / "x.nc"
    sweep.run_sweep("ode", _grid(["rho=1,2"]), {}, out=out, chunk=1, progress=False, keep_parts=True)
    out.unlink()
    with pytest.raises(SystemExit) as exc:
        sweep.main(["--grid", "rho=1,3", "--chunk", "1", "--out", str(out), "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "another sweep" in err


def test_mc_engine_agrees_with_ode_and_point_seeds_do_not_depend_on_the_grid():
    opts = {"alphas": [20.0], "N": 500, "replicas": 48, "mc_engine": "reduced", "seed": 3}
    mc, _ = sweep.run_sweep("mc", _grid(["eps=0,1"], "mc", N=500), opts, progress=False)
    ode, _ = sweep.run_sweep("ode", _grid(["eps=0,1"]), {"alphas": [20.0]}, progress=False)
    quantities = ("R", "b", "E", "S")
    q = sidak_quantile(2 * len(quantities))
    for name in quantities:
        dev = np.abs(mc[name].values - ode[name].values)
        allow = q * mc[name + "_se"].values + TOLERANCES["bias"][name] / 500 + TOLERANCES["solver"]
        assert np.all(dev <= allow), report(name, mc[name].values, ode[name].values)
    # a wrong ODE (budgets exchanged between the points) fails the same check for R
    dev_wrong = np.abs(mc["R"].values - ode["R"].values[::-1])
    assert np.any(dev_wrong > q * mc["R_se"].values + TOLERANCES["bias"]["R"] / 500)
    mc2, _ = sweep.run_sweep("mc", _grid(["eps=1,2"], "mc", N=500), opts, progress=False)
    assert np.array_equal(mc.R.sel(eps=1.0).values, mc2.R.sel(eps=1.0).values)


BAD = [
    ([], "at least one axis"),
    (["--grid", "rho=1:3:0"], "num"),
    (["--grid", "rho=1:3"], "start:stop:num"),
    (["--grid", "prior=0.5,1.5"], "prior"),
    (["--grid", "rhoo=1,2"], "unknown field"),
    (["--grid", "eps"], "name=start:stop:num"),
    (["--grid", "eps="], "no values"),
    (["--grid", "eps_law=fixed,nope"], "eps_law"),
    (["--grid", "eps=0,x"], "not a number"),
    (["--grid", "rho=1,1"], "repeated"),
    (["--grid", "rho=1,2", "--grid", "rho=3"], "twice"),
    (["--grid", "N=100,200"], "unknown field"),
    (["--engine", "mc", "--grid", "N=1.5,3"], "integer"),
    (["--engine", "mc", "--grid", "rho=1", "--rtol", "1e-3"], "not an option"),
    (["--engine", "warp", "--grid", "rho=1"], "--engine"),
    (["--backend", "cloud", "--grid", "rho=1"], "--backend"),
    (["--grid", "rho=1", "--out", "x.csv"], "--out"),
    (["--grid", "rho=1", "--alphas", "0,10"], "alphas"),
    (["--grid", "rho=1", "--chunk", "0"], "--chunk"),
    (["--grid", "rho=1", "--rtol", "2"], "--rtol"),
    (["--engine", "mc", "--grid", "rho=1", "--mc-engine", "warp"], "--mc-engine"),
    (["--engine", "mc", "--grid", "rho=1", "--replicas", "1"], "--replicas"),
]


@pytest.mark.parametrize("argv,needle", BAD)
def test_bad_specs_exit_2_with_one_line(argv, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        sweep.main(argv + ["--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and needle in err, err


def test_killing_a_worker_mid_sweep_still_completes(client, tmp_path):
    """One worker process of the LocalCluster is SIGKILLed while it computes; its blocks are recomputed."""
    grid = _grid(["rho=1:3:5", "eps=0,1"])
    serial, _ = sweep.run_sweep("ode", grid, {}, chunk=1, progress=False)
    out = tmp_path / "k.nc"
    result = {}

    def run():
        result["ds"], result["stats"] = sweep.run_sweep("ode", grid, {"throttle": 0.5}, chunk=1, backend="dask",
                                                        client=client, out=out, progress=False)

    th = threading.Thread(target=run)
    th.start()
    pids = client.run(os.getpid)
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:
        busy = {w: tasks for w, tasks in client.processing().items() if tasks}
        if len(busy) == 2 and any(out.with_name(out.name + ".parts").glob("block_*.npz")):
            victim = sorted(busy)[0]
        else:
            time.sleep(0.05)
    assert victim is not None, "the two workers never ran blocks at the same time"
    os.kill(pids[victim], signal.SIGKILL)
    th.join(timeout=120)
    assert not th.is_alive()
    assert _same(serial, result["ds"]) and result["stats"].computed_points == grid.size
    assert victim not in client.scheduler_info()["workers"] or client.run(os.getpid).get(victim) != pids[victim]
    client.wait_for_workers(2, timeout=60)


def test_non_robust_only_and_erf_scale_axes_match_scalar_integrator():
    base = BASE.replace(non_robust_only=True)
    ds, _ = sweep.run_sweep("ode", _grid(["eps=0.3,1.2", "erf_scale=1,1.4142135623730951"], base=base),
                            {"alphas": [50.0], "baseline": False, "fixed_point": False}, progress=False)
    for eps in (0.3, 1.2):
        for s in (1.0, 2**0.5):
            traj = integrate(base.replace(eps=eps, erf_scale=s), [0.0, 50.0], eps_test=1.0)
            got = float(ds.R.sel(eps=eps, erf_scale=s).isel(alpha=0))
            assert abs(got - traj.R[-1]) < SWEEP_VS_SCALAR, report("R", got, traj.R[-1])
