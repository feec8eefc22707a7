"""Up-front estimates: a run too large for this machine is refused at once (exit 2, one line with the estimate,
the machine's limit and --force) before anything is allocated; a normal run is not; the time estimate is a
lower bound of a measured run; and the sweep's vectorised ODE has a wall-clock guard (no hang)."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from simulate.core import resources
from theory.params import ParameterError

#: the stiff corner of the valid domain where an explicit solver crawls (the simulate.ode hang case)
STIFF = {"rho": 1e-4, "eps": 100.0, "erf_scale": 1e-3, "b0": 100.0, "R0": -1.0, "loss": "cross_entropy"}


def _refused(main, argv, capsys):
    """Run ``main(argv)`` in-process; (exit status, stderr lines, seconds, peak bytes traced)."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return code, capsys.readouterr().err.strip().splitlines(), seconds, peak


@pytest.mark.parametrize("command, argv, says", [
    ("simulate.linear.mc", ["--rho", "2", "--eps", "1", "--N", "67108864", "--replicas", "7", "--quiet"], "years"),
    ("simulate.sweep.driver", ["--grid", "rho=0.25:4:100000", "--grid", "eps=0:2:100000", "--quiet"], "TiB"),
    ("simulate.sweep.driver", ["--grid", "rho=0.25:4:10000000000", "--quiet"], "TiB"),
    ("simulate.committee.mc", ["--N", "1000000", "--replicas", "4096", "--quiet"], "GiB"),
    ("simulate.committee.ode", ["--preset", "xor", "--K", "8", "--rule", "gh:4096", "--quiet"], "TiB"),
    ("simulate.linear.protocol", ["--prior", "0.7", "--rho", "2", "--mc-N", "100000000", "--mc-replicas", "100000",
                                  "--quiet"], "days"),
    ("simulate.linear.protocol", ["--prior", "0.7", "--rho", "2", "--segments", "10000000000", "--no-mc", "--quiet"],
     "TiB"),
    ("simulate.multinorm.command", ["--engine", "mc", "--d", "1000000", "--replicas", "256", "--alpha-max", "1000",
                                    "--quiet"], "days"),
    ("simulate.linear.protocol", ["--prior", "0.7", "--rho", "2", "--segments", "10000000000", "--no-mc", "--quiet"],
     "TiB"),
])
def test_a_run_too_large_is_refused_at_once_without_allocating(command, argv, says, capsys):
    import importlib

    main = importlib.import_module(command).main
    code, err, seconds, peak = _refused(main, argv, capsys)
    assert code == 2 and len(err) == 1, err
    assert says in err[0] and "--force" in err[0] and ("available" in err[0] or "may take" in err[0]), err[0]
    # no allocation: the refusal comes from the sizes alone (a started run would allocate GiB)
    assert peak < 64 << 20 and seconds < 30, (peak, seconds)


def test_check_refuses_on_memory_and_on_time_and_force_overrides():
    est = resources.Estimate("--N x --replicas = 10 x 10", memory=2e9, seconds=10.0, basis="b", lower="--N")
    with pytest.raises(resources.ResourceError, match=r"1.86 GiB of memory, more than the 1 GiB available.*--force"):
        resources.check(est, memory=1 << 30)
    resources.check(est, memory=4 << 30)  # fits
    with pytest.raises(resources.ResourceError, match=r"at least 10 s \(b\), more than the 5 s"):
        resources.check(est, memory=4 << 30, time_max=5.0)
    resources.check(est, memory=1, time_max=1.0, force=True)
    assert resources.sweep_points(["rho=0:1:300", "eps=0,1,2", "prior=0.7"]) == 900


def test_available_memory_is_read_from_the_machine():
    memory, source = resources.available_memory()
    assert memory is not None and memory > 1 << 20, source


def test_the_defaults_pass_and_a_normal_run_is_unaffected(capsys):
    from simulate.linear.mc import main

    resources.check(resources.mc_linear(1000, 32, 200.0, 201))  # simulate.mc's README size
    resources.check(resources.sweep(100 * 100, 14, "ode"))       # simulate.sweep's README size
    assert main(["--rho", "2", "--eps", "1", "--N", "50", "--replicas", "2", "--alpha-max", "1", "--alpha-step", "0.5",
                 "--threads", "1", "--quiet"]) == 0


def test_the_time_estimate_is_a_lower_bound_of_a_measured_run():
    """The refusal on time is honest only if the estimate never exceeds what a run takes: a run of the full
    engine, timed after its compilation, takes at least the estimate."""
    from simulate.linear.mc import run_mc
    from theory.params import Params

    run_mc(Params(), 20, 1, [0.0, 1.0], progress=False, threads=1)  # compiles the kernels
    N, M, alpha_max = 600, 2, 20.0
    t0 = time.perf_counter()
    run_mc(Params(), N, M, [0.0, alpha_max], progress=False, threads=1)
    measured = time.perf_counter() - t0
    est = resources.mc_linear(N, M, alpha_max, 2, "full", threads=1)
    assert est.seconds <= measured, (est.seconds, measured)


def test_the_sweep_ode_has_a_wall_clock_guard(monkeypatch, capsys):
    from simulate.linear.ode import integrate_grid
    from simulate.sweep.driver import main

    arrays = {k: np.array([v]) for k, v in STIFF.items() if k not in ("loss", "R0", "b0")}
    t0 = time.perf_counter()
    with pytest.raises(ParameterError, match="reached only alpha"):
        integrate_grid(np.array([0.0, 10.0]), R0=np.array([STIFF["R0"]]), b0=np.array([STIFF["b0"]]),
                       loss=STIFF["loss"], eps_law="fixed", non_robust_only=False, time_limit=1.0,
                       prior=np.array([0.5]), v1=np.array([1.0]), v2=np.array([1.0]), eta_w=np.array([0.04]),
                       eta_b=np.array([0.2]), **arrays)
    with pytest.raises(ParameterError, match="reached only alpha"):
        integrate_grid([0.0, 10.0], R0=STIFF["R0"], b0=STIFF["b0"], loss=STIFF["loss"], time_limit=1.0, prior=0.5,
                       v1=1.0, v2=1.0, eta_w=0.04, eta_b=0.2, **{k: STIFF[k] for k in ("rho", "eps", "erf_scale")})
    assert time.perf_counter() - t0 < 30
    monkeypatch.setattr(resources, "ODE_TIME_LIMIT", 1.0)
    argv = ["--grid", "rho=0.0001", "--alphas", "10", "--quiet"]
    for k in ("eps", "erf_scale", "b0", "R0", "loss"):
        argv += [f"--{k.replace('_', '-')}", str(STIFF[k])]
    code, err, seconds, _ = _refused(main, argv, capsys)
    assert code == 2 and len(err) == 1 and "reached only alpha" in err[0] and seconds < 30, (code, err, seconds)
