"""Integrate the large-N ODEs of the soft committee machine under adversarial training; its command.

    python -m simulate.committee --preset talk --K 2 --eps 1
    python -m simulate.committee --preset xor --K 4 --eps 0.5 --pgd-steps 3 --pgd-step 0.5

prints a table of alpha, the order parameters (Q_kl for k < l, R_kd, b_k, v_k when it learns), with ``--errors``
(and by default with ``--out`` or ``--plot``) the test error E and the adversarial error S at ``--eps-test``
(default: the training eps, or 1 for standard training), then the final state (and with ``--fixed-point`` the fixed point reached and its stability).  The conventions are those of
``python -m simulate.ode``: flags generated from :class:`theory.committee.CommitteeParams`, ``--out`` CSV
(provenance in PATH.json) or JSON, ``--plot``, ``--quiet``, one-line errors with exit status 2.

A separate command rather than a model flag on ``simulate.ode``: the two models share the data-model
flags but not the state (R, b against Q, R, b, v of shape K x D), and a flag would make every option of the
linear command (eps_law, loss, erf_scale, non_robust_only) conditional.

Accuracy: the drift's Gaussian average uses the rule of ``--rule`` (default theory.committee.DEFAULT_RULES: without
the attack the closed form ("exact"), with it a Gauss-Hermite product grid for K <= 2, randomised quasi-Monte Carlo with 8
scrambled blocks otherwise, and where the integrand jumps (sum |v| > 1 or v learning) the line rule that splits
every line at the jump); ``--quad-error`` prints the estimated quadrature error of the drift on each row (relative
and absolute) and ``--quad-tol`` refines the rule until the estimate at the start is below the tolerance.  E and S
come from lines through an outer randomised QMC rule (theory.committee.errors_with_se; their standard errors are in
the JSON output's solver block).  The right-hand
side runs in a compiled numba kernel when numba is installed (``--backend``; the numpy reference otherwise, the
same numbers to 1e-12).  Solver: LSODA, rtol 1e-6, atol 1e-8 (fewer CPU seconds than RK45 on the talk and xor
cases, bench/committee.py).  The fixed point near the final state is searched only with ``--fixed-point``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy.integrate import solve_ivp

from theory.committee import (COMMITTEE_FIELD_HELP, COMMITTEE_INT_RANGES, COMMITTEE_RANGES, PRESETS, CommitteeParams,
                              Rule, State, averages, drift, drift_error, drift_rule, errors, errors_with_se,
                              fixed_point, pack, rule_for, rule_parts, sqrt_gram, state_names, unpack)
from theory.committee.quadrature import VLINE_MAX_K
from theory.params import RANGES, ParameterError

from ..core import resources
from ..core.cli import (AlphaProgress, ArgumentParser, add_output_arguments, add_param_arguments, check_outputs,
                        flag_name, number, one_line_errors, progress_bar, range_type, real, table_indices,
                        write_outputs)
from ..core.grid import ATOL_RANGE, RTOL_RANGE, check_eps_test, default_alphas, default_eps_test
from ..core.provenance import provenance, save_figure, write_result
from .ode import default_alphas
from ..core.cli import command

__all__ = ["CommitteeTrajectory", "integrate", "default_eps_test", "main", "add_committee_arguments",
           "committee_params_from_args", "parse_array", "kernel_averages", "make_rhs", "BACKENDS", "refine_rule"]

BACKENDS = ("auto", "numba", "numpy")
#: default solver: LSODA (switches between Adams and BDF) took fewer CPU seconds than RK45 at equal accuracy on
#: the talk, xor and the large-learning-rate xor cases (bench/committee.py)
DEFAULT_METHOD = "LSODA"

_ARRAYS = ("R0", "Q0", "b0", "v0")


@dataclass(frozen=True)
class CommitteeTrajectory:
    """Solution on a grid of alpha: the packed state y (len(alpha), n) and E, S per alpha.

    Attribute access by name gives one series: ``traj.E``, ``traj.S``, ``getattr(traj, 'R[1,2]')`` (the
    names of :func:`theory.committee.state_names`); this is what :func:`simulate.compare.check` reads.
    """

    params: CommitteeParams
    eps_test: float
    alpha: np.ndarray
    y: np.ndarray
    E: np.ndarray
    S: np.ndarray
    test_attack: tuple[int, float]
    solver: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return state_names(self.params.K, self.params.D)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        names = state_names(self.params.K, self.params.D)
        if name in names:
            return self.y[:, names.index(name)]
        raise AttributeError(name)

    def state(self, i: int) -> State:
        return unpack(self.y[i], self.params.K, self.params.D)

    def series(self) -> dict[str, np.ndarray]:
        out = {n: self.y[:, j] for j, n in enumerate(self.names)}
        out["E"], out["S"] = self.E, self.S
        return out

    def index(self, alpha: float) -> int:
        idx = np.flatnonzero(np.isclose(self.alpha, alpha, rtol=0, atol=1e-9))
        if idx.size == 0:
            raise KeyError(f"alpha = {alpha} is not on the output grid")
        return int(idx[0])

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, **self.series(), "eps_test": self.eps_test,
                "test_attack": {"steps": self.test_attack[0], "step": self.test_attack[1]}, "solver": self.solver}


def kernel_averages(state: State, p: CommitteeParams, rule: Rule, attack_in_average: bool = True):
    """:func:`theory.committee.averages` by the compiled kernel (simulate.kernels.committee_drift)."""
    if rule.name == "exact":  # the closed form: no nodes to run over
        return averages(state, p, rule, attack_in_average)
    from ..kernels.committee_drift import committee_averages

    Q, R, b, v = state
    L, P = sqrt_gram(Q)
    eps = p.eps if attack_in_average else 0.0
    # |sigma| < 1 <= |tau|: the sign of sigma - tau at the clean fields is -tau (the kernel skips their erf)
    sign_known = bool(np.sum(np.abs(v)) <= 1.0 and np.all(np.abs(p.mixture().labels) >= 1.0))
    parts = []
    for mix, r in rule_parts(state, p, rule, _compiled_line_nodes):  # one part, or one per cluster (line rule)
        parts.append(committee_averages(r.nodes, r.weights, r.blocks, np.ascontiguousarray(L),
                                        np.ascontiguousarray(P @ R), np.ascontiguousarray(mix.means @ R.T - b),
                                        np.ascontiguousarray(mix.means, float), mix.priors, mix.variances,
                                        mix.labels.astype(float), np.ascontiguousarray(Q), np.ascontiguousarray(R),
                                        np.ascontiguousarray(b, float), np.ascontiguousarray(v, float), float(eps),
                                        int(p.pgd_steps), float(p.pgd_step), sign_known))
    return tuple(sum(a[i] for a in parts) for i in range(5))


def _compiled_line_nodes(zb, zd, mean, Lz, tau, v, outer_w, panels=None):
    """theory.committee.quadrature.line_nodes_on by the compiled kernel, with theory's constants of the line rule."""
    from scipy.special import roots_legendre

    from theory.committee import quadrature as tco

    from ..kernels.committee_drift import committee_line_nodes

    xg, wg = roots_legendre(tco.LINE_GL)
    return committee_line_nodes(zb, zd, mean, Lz, float(tau), np.ascontiguousarray(v, float), outer_w,
                                float(tco.LINE_T), int(tco.LINE_PANELS if panels is None else panels),
                                int(tco.LINE_GRID), int(tco.LINE_NEWTON),
                                xg, wg)


def _numba_available() -> bool:
    """Whether numba is installed (found without importing it: the command starts without numba)."""
    import importlib.util

    return importlib.util.find_spec("numba") is not None


def resolve_backend(backend: str = "auto"):
    """(averages function or None for theory's numpy, name); 'auto' is numba when it imports, else numpy."""
    if backend not in BACKENDS:
        raise ParameterError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "numpy" or (backend == "auto" and not _numba_available()):
        return None, "numpy"
    if not _numba_available():
        raise ParameterError("--backend numba needs numba (pip install numba); --backend numpy works without it")
    return kernel_averages, "numba"


def make_rhs(params: CommitteeParams, rule=None, backend: str = "auto", **variant):
    """The right-hand side f(alpha, y) of the packed state, by the rule and backend (numba or numpy)."""
    avg, _ = resolve_backend(backend)
    K, D = params.K, params.D

    def f(_a, y):
        return pack(drift(unpack(y, K, D), params, rule, backend=avg, **variant))

    return f


def refine_rule(rule: str) -> str:
    """The next finer rule of the same kind: gh:n -> gh:(3n/2), qmc:m -> qmc:(m+1), rqmc:m:r -> rqmc:(m+1):r;
    the closed form ("exact") is its own limit."""
    kind, *nums = rule.split(":")
    if kind == "exact":
        return rule
    if kind == "gh":
        return f"gh:{int(nums[0]) + max(2, int(nums[0]) // 2)}"
    if kind == "qmc":
        return f"qmc:{int(nums[0]) + 1}"
    if kind == "line":
        return f"line:{int(nums[0]) + max(2, int(nums[0]) // 2)}" + (f":{nums[1]}" if len(nums) > 1 else "")
    return f"rqmc:{int(nums[0]) + 1}:{nums[1]}"


def choose_rule(params: CommitteeParams, quad_tol: float, rule=None, backend: str = "auto", max_refinements: int = 6):
    """The rule, refined from ``rule`` (default: the default rule) until the estimated relative quadrature error
    of the drift at the initial state is below ``quad_tol``; returns (rule name, estimated error)."""
    avg, _ = resolve_backend(backend)
    name = rule_for(params, rule).name
    st = params.initial_state()
    for _ in range(max_refinements + 1):
        y, err = drift_error(st, params, name, backend=avg)
        scale = float(np.max(np.abs(y)))
        rel = float(np.max(err)) / scale if scale > 0 else 0.0
        if rel <= quad_tol:
            break
        name = refine_rule(name)
    return name, rel


def integrate(params: CommitteeParams, alphas=None, *, eps_test: float | None = None, test_steps: int | None = None,
              test_step: float | None = None, rtol: float = 1e-6, atol: float = 1e-8, method: str = DEFAULT_METHOD,
              error_alphas=None, nodes: int | str | None = None, rule: int | str | None = None,
              backend: str = "auto", quad_tol: float | None = None, quad_error_alphas=(), progress: bool = False,
              **variant) -> CommitteeTrajectory:
    """Solve the ODEs from the initial state of ``params``; E and S on ``error_alphas`` (default: all of
    ``alphas``; NaN elsewhere).

    ``rule`` (or its older name ``nodes``) is the drift's quadrature rule (:func:`theory.committee.drift_rule`;
    default by K and attack); ``quad_tol`` refines it until the estimated relative error at the initial state is
    below the tolerance (:func:`choose_rule`); ``quad_error_alphas``: where to estimate the relative quadrature error
    of the drift (:func:`theory.committee.drift_error`), reported in ``solver['quad_error']`` (NaN elsewhere).
    E and S come with the standard errors of their randomised outer rules in ``solver['E_se']``, ``solver['S_se']``
    (:func:`theory.committee.errors_with_se`).  ``backend``: 'auto' (numba when available), 'numba' or 'numpy'
    (theory's reference).  ``variant`` passes
    deliberately wrong variants to :func:`theory.committee.drift`; ``progress`` shows tqdm bars (alpha reached,
    then the errors) on stderr."""
    if not isinstance(params, CommitteeParams):
        raise ParameterError(f"params must be a CommitteeParams, got {type(params).__name__}")
    alphas = np.asarray(default_alphas() if alphas is None else alphas, dtype=float).ravel()
    if alphas.size == 0 or not np.all(np.isfinite(alphas)) or alphas[0] < 0 or np.any(np.diff(alphas) < 0):
        raise ParameterError("alphas must be a non-empty, finite, non-decreasing grid of values >= 0")
    eps_test = check_eps_test(eps_test, params)
    steps = params.pgd_steps if test_steps is None else test_steps
    step = params.pgd_step if test_step is None else float(test_step)
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ParameterError(f"test_steps must be an integer >= 1, got {steps!r}")
    if not (math.isfinite(step) and step > 0):
        raise ParameterError(f"test_step must be finite and > 0, got {step}")
    steps = int(steps)
    if rule is None:
        rule = nodes
    avg, backend_name = resolve_backend(backend)
    quad_start = None
    if quad_tol is not None:
        if not (isinstance(quad_tol, (int, float)) and 0 < quad_tol < 1):
            raise ParameterError(f"quad_tol must lie in (0, 1), got {quad_tol!r}")
        rule, quad_start = choose_rule(params, float(quad_tol), rule, backend)
    rule_name = rule_for(params, rule).name
    if rule_name == "exact" and params.eps > 0 and variant.get("attack_in_average", True):
        raise ParameterError(f"rule 'exact' (the closed form) needs eps = 0, got eps = {params.eps:g}")
    y0 = pack(params.initial_state())
    nfev = 0
    if alphas[-1] > 0:
        fun = AlphaProgress(make_rhs(params, rule_name, backend, **variant), alphas[-1], "ODE", show=progress)
        try:
            sol = solve_ivp(fun, (0.0, alphas[-1]), y0, method=method, t_eval=alphas, rtol=rtol, atol=atol)
        finally:
            fun.close()
        if not sol.success:
            raise RuntimeError(f"ODE solver failed: {sol.message}")
        Y = sol.y.T
        nfev = int(sol.nfev)
    else:
        Y = np.tile(y0, (alphas.size, 1))
    quad = np.full(alphas.size, np.nan)
    quad_abs = np.full(alphas.size, np.nan)
    qwant = np.isin(np.round(alphas, 9), np.round(np.asarray(quad_error_alphas, float), 9))
    for i in np.flatnonzero(qwant):
        yq, err = drift_error(unpack(Y[i], params.K, params.D), params, rule_name, backend=avg, **variant)
        scale = float(np.max(np.abs(yq)))
        quad_abs[i] = float(np.max(err))
        quad[i] = quad_abs[i] / scale if scale > 0 else 0.0
    want = np.ones(alphas.size, bool) if error_alphas is None else np.isin(
        np.round(alphas, 9), np.round(np.asarray(error_alphas, float), 9))
    E = np.full(alphas.size, np.nan)
    S = np.full(alphas.size, np.nan)
    E_se = np.full(alphas.size, np.nan)
    S_se = np.full(alphas.size, np.nan)
    with progress_bar(int(want.sum()), "E and S", show=progress and bool(want.any()), unit="alpha") as bar:
        for i in np.flatnonzero(want):
            E[i], S[i], E_se[i], S_se[i] = errors_with_se(unpack(Y[i], params.K, params.D), params, eps_test, steps,
                                                          step)
            bar.update()
    info = {"method": method, "rtol": rtol, "atol": atol, "nfev": nfev, "rule": rule_name, "backend": backend_name,
            "quad_tol": quad_tol, "quad_error_start": quad_start, "quad_error": quad,
            "quad_error_abs": quad_abs, "E_se": E_se, "S_se": S_se, **variant}
    return CommitteeTrajectory(params, eps_test, alphas, Y, E, S, (steps, step), info)


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------
def parse_array(text: str) -> list:
    """'0.1,0;0,0.2' -> [[0.1, 0], [0, 0.2]] (rows by ';', entries by ',' or spaces); '0.1,0.2' -> a list."""
    try:
        rows = [[float(x) for x in r.replace(",", " ").split()] for r in text.split(";") if r.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid array: {text!r} (rows separated by ';', entries by ',')")
    if not rows:
        raise argparse.ArgumentTypeError(f"invalid array: {text!r}")
    return rows if ";" in text else rows[0]


def add_committee_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per field of CommitteeParams, by the shared generator (names as everywhere: eta_w -> --eta-w);
    the shared fields carry the linear model's ranges (CommitteeParams validates them with its rules)."""
    shared = [k for k in RANGES if k in COMMITTEE_FIELD_HELP and k not in _ARRAYS]  # rho, prior, v1, v2, eta_*, eps
    ranges = {**{k: RANGES[k] for k in shared}, **COMMITTEE_RANGES,
              **COMMITTEE_INT_RANGES}
    types = {"K": (int, "N"), "pgd_steps": (int, "N"), **{name: (parse_array, "ARRAY") for name in _ARRAYS}}
    add_param_arguments(parser, params_cls=CommitteeParams, helps=COMMITTEE_FIELD_HELP, ranges=ranges, types=types,
                        title="theory.committee.CommitteeParams")


def committee_params_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> CommitteeParams:
    values = {f.name: getattr(args, f.name) for f in fields(CommitteeParams) if hasattr(args, f.name)}
    try:
        return CommitteeParams(**values)
    except ParameterError as err:
        parser.error(f"{flag_name(str(err).split()[0])}: {err}")
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m simulate.committee",
        description="Integrate the large-N ODEs of online (adversarial) training of a two-layer soft committee "
                    "machine in a Gaussian mixture; print Q, R, b (and with --errors E and S) over alpha = steps/N.")
    add_committee_arguments(parser)
    run = parser.add_argument_group("run")
    run.add_argument("--alpha-max", type=real, default=200.0, metavar="X", help="final alpha (> 0) [200]")
    run.add_argument("--alpha-step", type=real, default=1.0, metavar="X",
                     help="spacing of the output grid; alpha = 10, 50, 200 are always included [1]")
    run.add_argument("--eps-test", type=number(float, 0.0, 1e3, why="budgets beyond 1e3 exceed every cluster distance by far"), default=None, metavar="X",
                     help="test budget of S (>= 0) [the training eps, or 1 if eps = 0]")
    run.add_argument("--test-steps", type=number(int, 1, 1000, why="each PGD step is a pass over the quadrature grid"), default=None, metavar="N", help="PGD steps of the test attack [pgd_steps]")
    run.add_argument("--test-step", type=number(float, 0.0, 100.0, lo_open=True, why="in units of eps; beyond 100 every step leaves the ball"), default=None, metavar="X", help="PGD step size of the test attack [pgd_step]")
    run.add_argument("--rtol", type=range_type(RTOL_RANGE), default=1e-6, metavar="X",
                     help=f"relative tolerance [default: 1e-6; valid [{RTOL_RANGE[0]:g}, {RTOL_RANGE[1]:g}]]")
    run.add_argument("--atol", type=range_type(ATOL_RANGE), default=1e-8, metavar="X",
                     help=f"absolute tolerance [default: 1e-8; valid [{ATOL_RANGE[0]:g}, {ATOL_RANGE[1]:g}]]")
    run.add_argument("--method", default=DEFAULT_METHOD, choices=("RK45", "DOP853", "LSODA", "Radau", "BDF"),
                     help=f"scipy.integrate.solve_ivp method [{DEFAULT_METHOD}]")
    quad = parser.add_argument_group("quadrature of the drift (theory.committee.drift_rule)")
    quad.add_argument("--rule", type=_rule_arg, default=None, metavar="RULE",
                      help="'exact' (closed form, eps = 0 only), 'gh:N' (Gauss-Hermite, N per dimension), 'qmc:M' (2^M Sobol points and mirrors) or "
                           "'rqmc:M:R' (R scrambled Sobol blocks of 2^M points, with a standard error) or "
                           "'line:N[:P]' (lines through an N-per-dimension Gauss-Hermite grid, split where the "
                           "integrand jumps, P Gauss-Legendre panels per line) or 'vline:M' (lines along v, "
                           "on which sigma is monotone, composite Gauss-Legendre of order M inside and out: a "
                           "slow reference for 2 <= K <= 4) [by K and attack: "
                           "theory.committee.default_rule]")
    quad.add_argument("--quad-tol", type=number(float, 1e-12, 0.5, lo_open=True, why="a relative error estimate: "
                      "below 1e-12 rounding dominates, above 0.5 the drift is not resolved"), default=None,
                      metavar="X", help="refine the rule until the estimated relative error of the drift at the "
                      "initial state is below X [off: the default rule]")
    resources.add_force_argument(quad)
    quad.add_argument("--quad-error", action="store_true",
                      help="estimate the quadrature error of the drift on the printed rows: relative to max |drift| "
                           "(column quad_err) and absolute (quad_abs)")
    quad.add_argument("--backend", choices=BACKENDS, default="auto",
                      help="right-hand side: numba kernel or numpy (theory's reference) [auto: numba if installed]")
    extra = parser.add_argument_group("optional outputs")
    extra.add_argument("--fixed-point", action="store_true",
                       help="search a fixed point near the final state and report its stability")
    extra.add_argument("--errors", action=argparse.BooleanOptionalAction, default=None,
                       help="the test and adversarial errors E and S (the costly error integrals) on the printed rows, "
                            "and on every row of --out and --plot [off, except with --out or --plot]")
    add_output_arguments(run, "write the trajectory: .csv (provenance in PATH.json) or .json", plot=True)
    return parser


def _rule_arg(text: str) -> str:
    kind = text.split(":")[0]
    try:
        drift_rule(1 if kind != "gh" else 1, text)
    except ParameterError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _shown(traj: CommitteeTrajectory) -> list[int]:
    return table_indices(traj.alpha, 1e-9)


def _columns(traj: CommitteeTrajectory) -> list[str]:
    names = [n for n in traj.names if not n.startswith("v[") or traj.params.eta_v > 0]
    if np.any(np.isfinite(traj.E)):
        names += ["E", "S"]
    if np.any(np.isfinite(np.asarray(traj.solver.get("quad_error", np.nan), float))):
        names += ["quad_err", "quad_abs"]
    return names


def table(traj: CommitteeTrajectory) -> str:
    cols = _columns(traj)
    series = traj.series()
    series["quad_err"] = np.asarray(traj.solver.get("quad_error", np.full(traj.alpha.size, np.nan)), float)
    series["quad_abs"] = np.asarray(traj.solver.get("quad_error_abs", np.full(traj.alpha.size, np.nan)), float)
    lines = [f"{'alpha':>8} " + " ".join(f"{c:>9}" for c in cols)]
    for i in _shown(traj):
        lines.append(f"{traj.alpha[i]:8.4g} " + " ".join(f"{series[c][i]:9.1e}" if c in ("quad_err", "quad_abs") else
                                                          f"{series[c][i]:9.5f}" for c in cols))
    return "\n".join(lines)


def header(p: CommitteeParams) -> str:
    return (f"preset={p.preset} K={p.K} rho={p.rho:g} prior={p.prior:g} v1={p.v1:g} v2={p.v2:g} eta_w={p.eta_w:g} "
            f"eta_b={p.eta_b:g} eta_v={p.eta_v:g} eps={p.eps:g} pgd_steps={p.pgd_steps} pgd_step={p.pgd_step:g} "
            f"v0={list(p.v0)}")


def summary(traj: CommitteeTrajectory, fixed: bool = True) -> str:
    p = traj.params
    i = len(traj.alpha) - 1
    info = traj.solver
    out = [f"final state at alpha = {traj.alpha[i]:g}: E = {traj.E[i]:.6f}, S(eps_test = {traj.eps_test:g}, "
           f"{traj.test_attack[0]} steps of {traj.test_attack[1]:g} eps) = {traj.S[i]:.6f}" if np.isfinite(traj.E[i])
           else f"final state at alpha = {traj.alpha[i]:g} (E and S: --errors)",
           f"drift quadrature: rule {info.get('rule')} ({info.get('backend')} backend)"
           + (f", estimated relative error at the start {info['quad_error_start']:.2g} (quad_tol "
              f"{info['quad_tol']:g})" if info.get("quad_tol") is not None else "")
           + f"; {info.get('method')} rtol {info.get('rtol'):g}, {info.get('nfev')} right-hand sides"]
    if not fixed:
        return "\n".join(out)
    fp = fixed_point(traj.y[i], p)
    if fp is None:
        out.append("fixed point: none found from the final state (still moving)")
    else:
        moved = float(np.max(np.abs(fp.y - traj.y[i])))
        ev = sorted((e.real for e in fp.eigenvalues), reverse=True)
        out.append(f"fixed point near the final state (max |y* - y| = {moved:.3g}, residual {fp.residual:.1e}): "
                   f"{'stable' if fp.stable else 'unstable'}; largest Jacobian eigenvalues (real parts) "
                   + ", ".join(f"{e:.4g}" for e in ev[:3]))
    return "\n".join(out)


def _write(traj: CommitteeTrajectory, path: Path, run_args: dict[str, Any]) -> None:
    prov = provenance(params=traj.params, seeds=None, eps_test=traj.eps_test, solver=traj.solver,
                      test_attack=traj.test_attack, run=run_args)
    series = traj.series()
    rows = ([float(a)] + [float(v[i]) for v in series.values()] for i, a in enumerate(traj.alpha))
    write_result(path, prov, ["alpha", *series], rows, {"trajectory": traj.to_dict()})


def _plot(traj: CommitteeTrajectory, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = traj.series()
    ok = np.isfinite(traj.E)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), constrained_layout=True)
    for n in traj.names:
        ax = axes[0] if n.startswith("R") else axes[1] if n.startswith("Q") else axes[2] if n.startswith("b") else None
        if ax is not None:
            ax.plot(traj.alpha, s[n], label=n)
    for ax, t in zip(axes[:3], ("R", "Q (k < l)", "b")):
        ax.set_ylabel(t)
        ax.legend(fontsize=6, ncol=2)
    axes[3].plot(traj.alpha[ok], traj.E[ok], label="E")
    axes[3].plot(traj.alpha[ok], traj.S[ok], label=f"S (eps = {traj.eps_test:g})")
    axes[3].legend()
    for ax in axes:
        ax.set_xlabel(r"$\alpha$")
    fig.suptitle(header(traj.params), fontsize=8)
    save_figure(fig, path)
    plt.close(fig)


@command
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    params = committee_params_from_args(parser, args)
    with contextlib.ExitStack() as stack:
        with one_line_errors(parser):
            alphas = default_alphas(args.alpha_max, args.alpha_step)
            resolve_backend(args.backend)
            if args.rule == "exact" and params.eps > 0:
                parser.error(f"--rule: 'exact' (the closed form) holds without the attack only (--eps 0), got --eps "
                             f"{params.eps:g}; with the attack use 'gh:N', 'rqmc:M:R' or 'line:N'")
            if args.rule is not None and args.rule.startswith("vline:") and not 2 <= params.K <= VLINE_MAX_K:
                parser.error(f"--rule: 'vline:M' needs 2 <= --K <= {VLINE_MAX_K}, got --K {params.K}")
            if args.rule is not None:  # the rule's nodes, estimated before it is built
                rule = args.rule if ":" in args.rule else f"gh:{args.rule}"
                resources.check(resources.committee_rule(params.K, rule, alphas.size), force=args.force)
            check_outputs(args, stack)
        return _run(args, params, alphas)


def _run(args: argparse.Namespace, params: CommitteeParams, alphas: np.ndarray) -> int:
    shown = alphas[table_indices(alphas, 1e-9)]
    traj0 = integrate(params, alphas, eps_test=args.eps_test, test_steps=args.test_steps, test_step=args.test_step,
                      rtol=args.rtol, atol=args.atol, method=args.method, error_alphas=[], rule=args.rule,
                      backend=args.backend, quad_tol=args.quad_tol, quad_error_alphas=shown if args.quad_error else (),
                      progress=not args.quiet)
    # E and S (the costly part) on the rows that are printed, and on the whole grid for a plot or a file
    every = args.out is not None or args.plot is not None
    with_errors = every if args.errors is None else args.errors
    want = np.array([]) if not with_errors else traj0.alpha if every else traj0.alpha[_shown(traj0)]
    E = np.full(traj0.alpha.size, np.nan)
    S = np.full(traj0.alpha.size, np.nan)
    rows = [i for i, a in enumerate(traj0.alpha) if np.any(np.abs(want - a) < 1e-12)]
    with progress_bar(len(rows), "E and S", show=not args.quiet, unit="alpha") as bar:
        for i in rows:
            E[i], S[i] = errors(traj0.state(i), params, traj0.eps_test, *traj0.test_attack)
            bar.update()
    traj = CommitteeTrajectory(params, traj0.eps_test, traj0.alpha, traj0.y, E, S, traj0.test_attack, traj0.solver)
    if not args.quiet:
        print(f"# soft committee machine, large-N ODEs: {header(params)}; S at eps_test={traj.eps_test:g} "
              f"({traj.test_attack[0]} PGD steps of {traj.test_attack[1]:g} eps)")
        if traj.solver["backend"] == "numpy" and args.backend == "auto":
            print("# note: numba is not installed; the right-hand side runs in numpy (slower, the same numbers)")
        print(table(traj))
        print(summary(traj, fixed=args.fixed_point))
    write_outputs(args, lambda path, run_args: _write(traj, path, run_args), lambda path: _plot(traj, path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
