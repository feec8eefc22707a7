"""Integrate the large-N ODEs of online adversarial training; the project's main command.

    python -m simulate.ode --rho 2 --eps 1

prints a table of alpha, R, b, E, S over the run and a summary (final state, fixed points with their
stability, robustness curve S(eps) at the end).  alpha = steps/N is the learning time.  S is evaluated at
the test budget ``--eps-test``, which defaults to the training budget, or to 1 (the talk's value) when the
training is standard (eps = 0).

Accuracy: with the default tolerances (LSODA, rtol = 1e-10, atol = 1e-12) the trajectory is accurate to
``STATED_ERROR`` = 1e-8 absolute in R and b; tests check this against a tighter solution and by halving the
tolerances.
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.integrate import solve_ivp

from theory.errors import adversarial_error, best_linear_adversarial_error, bayes_error, test_error
from theory.ode import drift, fixed_points, rhs
from theory.params import ParameterError, Params

from ..core.cli import (ArgumentParser, add_output_arguments, add_param_arguments, check_outputs, one_line_errors,
                  params_from_args, params_line, real, table_indices, write_outputs)
from ..core.grid import (ALPHA_MAX, ATOL_RANGE, EPS_TEST_MAX, GRID_MAX, RTOL_RANGE, check_alphas,  # noqa: F401
                         check_eps_test, check_tolerances, default_alphas, default_eps_test)
from ..core.resources import OutOfTime, wall_clock
from ..core.compare import STATED_ERROR
from ..core.provenance import provenance, save_figure, write_result
from ..core.cli import command

__all__ = ["Trajectory", "integrate", "integrate_grid", "default_alphas", "default_eps_test", "check_run", "main", "STATED_ERROR", "METHODS"]


# Valid ranges of a run, each with its reason (alpha grid and eps_test: simulate.core.grid).

METHODS = ("auto", "DOP853", "RK45", "Radau", "LSODA")


def check_run(params: Params, eps_test, rtol: float, atol: float, method: str) -> float:
    """The one validation of an ODE run's settings; returns eps_test (defaulted). Raises ParameterError."""
    eps_test = check_eps_test(eps_test, params)
    check_tolerances(rtol, atol)
    if method not in METHODS:
        raise ParameterError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return eps_test


@dataclass(frozen=True)
class Trajectory:
    """Solution of the ODEs on a grid of learning times alpha (arrays of equal length)."""

    params: Params
    eps_test: float
    alpha: np.ndarray
    R: np.ndarray
    b: np.ndarray
    E: np.ndarray
    S: np.ndarray
    solver: dict[str, Any] = field(default_factory=dict)

    def at(self, alpha: float) -> dict[str, float]:
        """The state at a grid point (exact match required)."""
        idx = np.flatnonzero(np.isclose(self.alpha, alpha, rtol=0, atol=1e-9))
        if idx.size == 0:
            raise KeyError(f"alpha = {alpha} is not on the output grid")
        i = int(idx[0])
        return {"alpha": float(self.alpha[i]), "R": float(self.R[i]), "b": float(self.b[i]),
                "E": float(self.E[i]), "S": float(self.S[i])}

    def rows(self):
        return zip(self.alpha, self.R, self.b, self.E, self.S)

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "R": self.R, "b": self.b, "E": self.E, "S": self.S,
                "eps_test": self.eps_test, "solver": self.solver}


#: The default solver, 'auto', is LSODA: Adams methods while the problem is not stiff, BDF where it is
#: (it detects stiffness itself).  Measured to alpha = 200, against DOP853 at rtol 1e-13: the talk's
#: scenario, cross-entropy, half-normal non-robust-only and exponential budgets all within 3e-10 with
#: 230 to 350 evaluations (DOP853: the same errors with 360 to 550); cross-entropy with eta_w = 10, a stiff
#: case: LSODA 333 evaluations (0.2 s), Radau 4,876 (3.6 s), DOP853 181,217 (98 s), all agreeing to 1e-16.
AUTO_METHOD = "LSODA"
#: 'auto' gives LSODA this many right-hand sides (the hardest case the tests draw needs 3,704); a run that needs
#: more is restarted with :data:`AUTO_FALLBACK`.  Where the drift has a step-like restoring force (erf_scale
#: 1e-3 with a large eps and a tiny rho: dR/dalpha ~ 400 - 3e13 R near R = 0) LSODA's step size collapses
#: and it would not reach alpha = 10 in hours; BDF holds the fast equilibrium in about 2,500 evaluations.
AUTO_BUDGET = 10000
AUTO_FALLBACK = "BDF"
#: Wall-clock guard of :func:`integrate` (seconds): past it, one ParameterError instead of a hang.
TIME_LIMIT = 600.0


class _OutOfBudget(Exception):
    def __init__(self, alpha: float):
        super().__init__(alpha)
        self.alpha = alpha


class _OutOfTime(_OutOfBudget):
    pass


def integrate(params: Params, alphas=None, *, eps_test: float | None = None, rtol: float = 1e-10,
              atol: float = 1e-12, method: str = "auto", backend: str = "auto",
              time_limit: float | None = TIME_LIMIT) -> Trajectory:
    """Solve the ODEs from (R0, b0) at alpha = 0 and report R, b, E, S on the grid ``alphas``.

    ``method``: a solve_ivp method, or 'auto' (:data:`AUTO_METHOD`, restarted with :data:`AUTO_FALLBACK`
    after :data:`AUTO_BUDGET` right-hand sides, which handles the step-like stiff cases too).  ``time_limit``:
    seconds of wall time after which a ParameterError (one line, naming how far the solver got) ends the
    run instead of a hang; None for no limit.
    """
    import time

    alphas = check_alphas(default_alphas() if alphas is None else alphas)
    eps_test = check_run(params, eps_test, rtol, atol, method)
    calls = [0]
    budget: list[int | None] = [AUTO_BUDGET if method == "auto" else None]
    t_start = time.monotonic()

    def fun(alpha, y):
        calls[0] += 1
        if budget[0] is not None and calls[0] > budget[0]:
            raise _OutOfBudget(alpha)
        if time_limit is not None and calls[0] % 64 == 0 and time.monotonic() - t_start > time_limit:
            raise _OutOfTime(alpha)
        dR, db = rhs(float(y[0]), float(y[1]), params, backend)
        return np.array([dR, db], dtype=float)

    y0 = np.array([params.R0, params.b0])
    used = AUTO_METHOD if method == "auto" else method
    if alphas[-1] > 0:
        try:
            try:
                sol = solve_ivp(fun, (0.0, alphas[-1]), y0, method=used, t_eval=alphas, rtol=rtol, atol=atol)
            except _OutOfTime:
                raise
            except _OutOfBudget:
                budget[0] = None
                used = AUTO_FALLBACK
                sol = solve_ivp(fun, (0.0, alphas[-1]), y0, method=used, t_eval=alphas, rtol=rtol, atol=atol)
        except _OutOfTime as stop:
            raise ParameterError(f"alpha_max: the ODE ({used}) reached only alpha = {stop.alpha:.3g} of "
                                 f"{alphas[-1]:g} in {time_limit:g} s (a very stiff drift); try a larger "
                                 f"--erf-scale, a smaller --eps or --alpha-max, or another --method") from None
        if not sol.success:
            raise RuntimeError(f"ODE solver failed: {sol.message}")
        R, b = sol.y
    else:
        R, b = np.full(alphas.size, y0[0]), np.full(alphas.size, y0[1])
    nfev = calls[0]
    info = {"method": used, "rtol": rtol, "atol": atol, "nfev": int(nfev), "backend": backend}
    return Trajectory(params, eps_test, alphas, R, b, test_error(R, b, params),
                      adversarial_error(R, b, eps_test, params), info)


def integrate_grid(alphas, *, rtol: float = 1e-8, atol: float = 1e-10, method: str = "DOP853",
                   R0=0.0, b0=0.0, time_limit: float | None = TIME_LIMIT,
                   what: str = "alpha_max: the ODEs of {M} trajectories",
                   advice: str = "try a larger --erf-scale, a smaller --eps or --alpha-max, or another method",
                   **keywords):
    """Integrate many trajectories at once: every keyword of :func:`theory.linear.ode.drift` may be an array
    (``eps`` too, for every budget law).

    The arrays (and R0, b0) are broadcast to one shape M and the 2M-dimensional system is solved by one
    call of solve_ivp with a vectorised right-hand side (no Python loop over trajectories); strings, booleans
    and plain numbers are passed to the drift as they are (``erf_scale`` must stay a number for the
    quadrature backends).  Returns (R, b) of shape (len(alphas),) + M.  The adaptive steps are common to
    the M trajectories, so a trajectory's numbers depend on the others at the level of the tolerances.
    ``time_limit``: seconds of wall time after which a ParameterError (one line, naming how far the solver got:
    ``what`` with {M} the number of trajectories, then ``advice``) ends the solve instead of a hang; None for no
    limit.
    """
    alphas = check_alphas(alphas)
    arrays = {k: np.asarray(v, dtype=float) for k, v in keywords.items() if isinstance(v, (np.ndarray, list, tuple))}
    shape = np.broadcast_shapes(np.shape(R0), np.shape(b0), *(v.shape for v in arrays.values()))
    M = int(np.prod(shape)) if shape else 1
    kw = {**keywords, **{k: np.broadcast_to(v, shape).ravel() for k, v in arrays.items()}}
    y0 = np.concatenate([np.broadcast_to(R0, shape).ravel(), np.broadcast_to(b0, shape).ravel()]).astype(float)

    def fun(_alpha, y):
        dR, db = drift(y[:M], y[M:], **kw)
        return np.concatenate([np.broadcast_to(dR, (M,)), np.broadcast_to(db, (M,))])

    try:
        sol = solve_ivp(wall_clock(fun, time_limit), (0.0, alphas[-1]), y0, method=method, t_eval=alphas, rtol=rtol,
                        atol=atol)
    except OutOfTime as stop:
        raise ParameterError(f"{what.format(M=M)} ({method}) reached only alpha = {stop.alpha:.3g} of "
                             f"{alphas[-1]:g} in {time_limit:g} s (a very stiff drift); {advice}") from None
    if not sol.success:
        raise RuntimeError(f"ODE solver failed: {sol.message}")
    R = sol.y[:M].T.reshape((alphas.size,) + shape)
    b = sol.y[M:].T.reshape((alphas.size,) + shape)
    return R, b


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m simulate.ode",
        description="Integrate the large-N ODEs of online adversarial training in the Gaussian mixture "
                    "and print R, b, test error E and adversarial error S over the learning time alpha.")
    add_param_arguments(parser)
    run = parser.add_argument_group("run")
    run.add_argument("--alpha-max", type=real, default=200.0, metavar="X",
                     help=f"final learning time alpha = steps/N, in (0, {ALPHA_MAX:g}] [default: 200]")
    run.add_argument("--alpha-step", type=real, default=1.0, metavar="X",
                     help=f"spacing of the output grid, at most {GRID_MAX} points; alpha = 10, 50, 200 are always "
                          "included [default: 1]")
    run.add_argument("--eps-test", type=real, default=None, metavar="X",
                     help=f"test budget of S, in [0, {EPS_TEST_MAX:g}] [default: the training eps, or 1 if eps = 0]")
    run.add_argument("--rtol", type=real, default=1e-10, metavar="X",
                     help=f"relative tolerance [default: 1e-10; valid [{RTOL_RANGE[0]:g}, {RTOL_RANGE[1]:g}]]")
    run.add_argument("--atol", type=real, default=1e-12, metavar="X",
                     help=f"absolute tolerance [default: 1e-12; valid [{ATOL_RANGE[0]:g}, {ATOL_RANGE[1]:g}]]")
    run.add_argument("--method", default="auto", choices=METHODS,
                     help="scipy.integrate.solve_ivp method; auto: LSODA, which switches to BDF where the "
                          "problem is stiff [auto]")
    add_output_arguments(parser.add_argument_group("output"),
                         "write the trajectory: .csv (alpha,R,b,E,S, provenance in PATH.json) or .json", plot=True)
    return parser


def _table(traj: Trajectory) -> str:
    lines = [f"{'alpha':>8} {'R':>10} {'b':>10} {'E':>9} {'S':>9}"]
    for i in table_indices(traj.alpha, 1e-9):
        lines.append(f"{traj.alpha[i]:8.4g} {traj.R[i]:10.6f} {traj.b[i]:10.6f} {traj.E[i]:9.6f} {traj.S[i]:9.6f}")
    return "\n".join(lines)


def summary(traj: Trajectory) -> str:
    p = traj.params
    R, b = float(traj.R[-1]), float(traj.b[-1])
    out = [f"final state at alpha = {traj.alpha[-1]:g}: R = {R:.6f}, b = {b:.6f}, "
           f"E = {traj.E[-1]:.6f}, S(eps_test = {traj.eps_test:g}) = {traj.S[-1]:.6f}"]
    fps = fixed_points(p, starts=[(R, b), (0.99, 0.0), (-0.99, 0.0), (0.5, 1.0), (0.5, -1.0)])
    if p.eta_b == 0:
        out.append("fixed points: eta_b = 0, so b is frozen and fixed points form a line in b")
    for fp in fps:
        ev = ", ".join(f"{e.real:.4g}" + (f"{e.imag:+.3g}i" if abs(e.imag) > 0 else "") for e in fp.eigenvalues)
        out.append(f"fixed point: R* = {fp.R:.6f}, b* = {fp.b:.6f} ({fp.kind}; Jacobian eigenvalues {ev}); "
                   f"E* = {float(test_error(fp.R, fp.b, p)):.6f}, "
                   f"S* = {float(adversarial_error(fp.R, fp.b, traj.eps_test, p)):.6f}")
    eps_grid = np.round(np.linspace(0.0, 2.0, 9), 10)
    curve = adversarial_error(R, b, eps_grid, p)
    best = [best_linear_adversarial_error(float(e), p)[0] for e in eps_grid]
    out.append("robustness curve at the end (S of the final state / best unit-norm linear classifier):")
    out.append("  eps  " + " ".join(f"{e:7.2f}" for e in eps_grid))
    out.append("  S    " + " ".join(f"{s:7.4f}" for s in curve))
    out.append("  best " + " ".join(f"{s:7.4f}" for s in best))
    out.append(f"Bayes error along the cluster axis: {bayes_error(p):.6f}")
    return "\n".join(out)


def _write(traj: Trajectory, path: Path, args_dict: dict[str, Any]) -> None:
    prov = provenance(params=traj.params, seeds=None, eps_test=traj.eps_test, solver=traj.solver,
                      run=args_dict)
    write_result(path, prov, ["alpha", "R", "b", "E", "S"], traj.rows(), {"trajectory": traj.to_dict()})


def _plot(traj: Trajectory, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5), constrained_layout=True)
    axes[0].plot(traj.alpha, traj.R)
    axes[0].set_ylabel("R")
    axes[1].plot(traj.alpha, traj.b)
    axes[1].set_ylabel("b")
    axes[2].plot(traj.alpha, traj.E, label="E (clean)")
    axes[2].plot(traj.alpha, traj.S, label=f"S (eps = {traj.eps_test:g})")
    axes[2].set_ylabel("error")
    axes[2].legend()
    for ax in axes:
        ax.set_xlabel(r"$\alpha$")
    p = traj.params
    fig.suptitle(f"rho={p.rho:g}, p={p.prior:g}, v1={p.v1:g}, v2={p.v2:g}, eta_w={p.eta_w:g}, "
                 f"eta_b={p.eta_b:g}, eps={p.eps:g} ({p.eps_law})")
    save_figure(fig, path)
    plt.close(fig)


@command
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    params = params_from_args(parser, args)
    with contextlib.ExitStack() as stack:
        with one_line_errors(parser):
            alphas = default_alphas(args.alpha_max, args.alpha_step)
            check_run(params, args.eps_test, args.rtol, args.atol, args.method)
            check_outputs(args, stack)
        with one_line_errors(parser):
            traj = integrate(params, alphas, eps_test=args.eps_test, rtol=args.rtol, atol=args.atol,
                             method=args.method)
        if not args.quiet:
            print(f"# online adversarial training, large-N ODEs: {params_line(params)}; "
                  f"S at eps_test={traj.eps_test:g}")
            print(_table(traj))
            print(summary(traj))
        write_outputs(args, lambda path, run_args: _write(traj, path, run_args), lambda path: _plot(traj, path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
