"""Optimal adversarial-training protocols: the budget schedule eps(alpha) that minimises an objective.

    python -m simulate.protocol --prior 0.7 --rho 2 --alpha-F 50 --eps-max 2 --segments 20 \\
        --out results/protocol_s2_a50.json

Problem (alpha = steps/N; notation of :mod:`theory.params` and :mod:`theory.control`): choose
u(alpha) = eps(alpha) in [0, eps_max] on [0, alpha_F] to minimise

    J[u] = S(R, b, eps_test) + lam E(R, b)  at alpha_F   (+ run_weight/alpha_F times its integral over alpha)

subject to the large-N ODEs.  Method: direct optimal control with a piecewise-constant schedule on
``segments`` equal pieces; the gradient dJ/du_k is exact up to the ODE tolerance, by forward sensitivities
(the 3x3 transition matrix of (R, b, running cost) and the sensitivity to u_k integrated with each piece,
from the closed-form derivatives of :func:`theory.control.drift_derivatives`, then chained backwards: the
discrete adjoint); L-BFGS-B with the bounds, from several starts.  docs/protocols.md argues this choice
against CasADi multiple shooting.

Checks on the result (``pontryagin``): the costate p(alpha) by integrating the adjoint ODE backwards from
p(alpha_F) = grad Phi, the switching function sigma = p . df/du on a fine grid, (i) the gradient by
the adjoint (integral of sigma over each piece) against the forward-sensitivity gradient, (ii) the KKT
conditions of the box on each piece, (iii) the sign of sigma where u sits at a bound, and (iv) that u
minimises the Hamiltonian over [0, eps_max] at the middle of each piece.  Comparison: the best constant
eps and standard training (eps = 0), by the ODE and by the Monte Carlo (reduced engine, exact in law at
finite N; the same seed for every schedule, so that differences are paired).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import minimize, minimize_scalar
from scipy.special import roots_legendre

from theory.control import costate_rhs, drift_derivatives, hamiltonian, objective_terms, switching_function
from theory.errors import adversarial_error, test_error
from theory.params import ParameterError, Params

from ..core.cli import ArgumentParser, add_param_arguments, params_from_args, real
from ..core.provenance import provenance, write_json
from ..core import resources
from ..core.cli import claim_output, command, one_line_errors

__all__ = ["Problem", "evaluate", "optimise", "best_constant", "pontryagin", "classify", "mc_objective", "main"]

RTOL, ATOL = 1e-10, 1e-12


@dataclass(frozen=True)
class Problem:
    """The control problem: parameters (their eps is ignored), horizon, bounds, pieces, objective."""

    params: Params
    alpha_F: float = 50.0
    eps_max: float = 2.0
    segments: int = 20
    eps_test: float = 1.0
    lam: float = 0.0
    run_weight: float = 0.0

    def __post_init__(self):
        p = self.params
        if p.eps_law != "fixed" or p.non_robust_only:
            raise ParameterError("the protocol needs eps_law='fixed' and non_robust_only=False")
        for name in ("alpha_F", "eps_max"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ParameterError(f"{name} must be finite and > 0, got {v}")
        if not (isinstance(self.segments, int) and self.segments >= 1):
            raise ParameterError(f"segments must be an integer >= 1, got {self.segments}")
        for name in ("eps_test", "lam", "run_weight"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ParameterError(f"{name} must be finite and >= 0, got {v}")

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(0.0, self.alpha_F, self.segments + 1)

    @property
    def rate(self) -> float:
        return self.run_weight / self.alpha_F


def _check_u(prob: Problem, u) -> np.ndarray:
    u = np.asarray(u, float).ravel()
    if u.size == 1:
        u = np.full(prob.segments, float(u[0]))
    if u.size != prob.segments or not np.all(np.isfinite(u)) or np.any(u < 0) or np.any(u > prob.eps_max + 1e-12):
        raise ParameterError(f"a schedule is {prob.segments} values in [0, eps_max = {prob.eps_max}]")
    return np.clip(u, 0.0, prob.eps_max)


def _aug(prob: Problem, uk: float, with_sens: bool):
    p, rate = prob.params, prob.rate

    def fun(_a, y):
        f, J, fu = drift_derivatives(y[0], y[1], uk, p)
        dz = np.empty(y.size)
        dz[:2] = f
        A = np.zeros((3, 3))
        A[:2, :2] = J
        if rate:
            val, g = objective_terms(y[0], y[1], p, prob.eps_test, prob.lam)
            dz[2] = rate * val
            A[2, :2] = rate * g
        else:
            dz[2] = 0.0
        if with_sens:
            Phi = y[3:12].reshape(3, 3)
            dz[3:12] = (A @ Phi).ravel()
            dz[12:15] = A @ y[12:15] + np.array([fu[0], fu[1], 0.0])
        return dz

    return fun


def evaluate(prob: Problem, u, grad: bool = True):
    """J[u] and, with ``grad``, the exact gradient dJ/du_k (forward sensitivities + discrete adjoint)."""
    u = _check_u(prob, u)
    p, edges = prob.params, prob.edges
    z = np.array([p.R0, p.b0, 0.0])
    Phis, sens = [], []
    for k in range(prob.segments):
        y0 = np.concatenate([z, np.eye(3).ravel(), np.zeros(3)]) if grad else z
        sol = solve_ivp(_aug(prob, float(u[k]), grad), (edges[k], edges[k + 1]), y0, method="DOP853",
                        rtol=RTOL, atol=ATOL)
        if not sol.success:
            raise RuntimeError(f"ODE solver failed on piece {k}: {sol.message}")
        y = sol.y[:, -1]
        z = y[:3]
        if grad:
            Phis.append(y[3:12].reshape(3, 3))
            sens.append(y[12:15])
    val, g = objective_terms(z[0], z[1], p, prob.eps_test, prob.lam)
    J = float(val) + float(z[2])
    if not grad:
        return J
    pvec = np.array([g[0], g[1], 1.0])
    gu = np.empty(prob.segments)
    for k in reversed(range(prob.segments)):
        gu[k] = pvec @ sens[k]
        pvec = Phis[k].T @ pvec
    return J, gu


def trajectory(prob: Problem, u, per_piece: int = 10) -> dict[str, np.ndarray]:
    """R, b, E, S(eps_test) and the schedule on a grid of ``per_piece`` points per piece."""
    u = _check_u(prob, u)
    p, edges = prob.params, prob.edges
    z = np.array([p.R0, p.b0, 0.0])
    al, Rs, bs, us = [0.0], [z[0]], [z[1]], [u[0]]
    for k in range(prob.segments):
        ts = np.linspace(edges[k], edges[k + 1], per_piece + 1)[1:]
        sol = solve_ivp(_aug(prob, float(u[k]), False), (edges[k], edges[k + 1]), z, method="DOP853", t_eval=ts,
                        rtol=RTOL, atol=ATOL)
        z = sol.y[:, -1]
        al += list(ts)
        Rs += list(sol.y[0])
        bs += list(sol.y[1])
        us += [u[k]] * ts.size
    R, b = np.array(Rs), np.array(bs)
    return {"alpha": np.array(al), "R": R, "b": b, "E": test_error(R, b, p),
            "S": adversarial_error(R, b, prob.eps_test, p), "eps": np.array(us)}


def best_constant(prob: Problem, scan: int = 41) -> tuple[float, float]:
    """The best constant budget in [0, eps_max]: a scan, then bounded Brent around the best scan point."""
    grid = np.linspace(0.0, prob.eps_max, scan)
    vals = np.array([evaluate(prob, e, grad=False) for e in grid])
    i = int(np.argmin(vals))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, scan - 1)]
    res = minimize_scalar(lambda e: evaluate(prob, e, grad=False), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-7})
    if res.fun < vals[i]:
        return float(res.x), float(res.fun)
    return float(grid[i]), float(vals[i])


def optimise(prob: Problem, starts=None, maxiter: int = 300, after_start=None) -> dict[str, Any]:
    """L-BFGS-B from several starts; returns the best schedule with its objective and gradient
    (``after_start()`` is called after each start: progress)."""
    if starts is None:
        starts = [np.zeros(prob.segments), np.full(prob.segments, prob.eps_max),
                  np.full(prob.segments, 0.5 * prob.eps_max)]
    best = None
    runs = []
    for s0 in starts:
        res = minimize(lambda u: evaluate(prob, u), _check_u(prob, s0), jac=True, method="L-BFGS-B",
                       bounds=[(0.0, prob.eps_max)] * prob.segments,
                       options={"maxiter": maxiter, "ftol": 1e-15, "gtol": 1e-10})
        runs.append({"start": np.asarray(s0).tolist(), "J": float(res.fun), "nit": int(res.nit),
                     "message": str(res.message)})
        if best is None or res.fun < best.fun:
            best = res
        if after_start is not None:
            after_start()
    u = np.clip(best.x, 0.0, prob.eps_max)
    J, g = evaluate(prob, u)
    return {"u": u, "J": J, "grad": g, "runs": runs}


def classify(prob: Problem, u, tol: float = 1e-3) -> dict[str, Any]:
    """Bang-bang when every piece sits at a bound (within tol eps_max); the switches between bounds."""
    u = np.asarray(u, float)
    at_lo = u <= tol * prob.eps_max
    at_hi = u >= (1 - tol) * prob.eps_max
    level = np.where(at_lo, 0, np.where(at_hi, 1, -1))
    switches = [float(prob.edges[k + 1]) for k in range(u.size - 1) if level[k] != level[k + 1]]
    return {"bang_bang": bool(np.all(at_lo | at_hi)), "pieces_at_0": int(at_lo.sum()),
            "pieces_at_eps_max": int(at_hi.sum()), "pieces_interior": int((~at_lo & ~at_hi).sum()),
            "switch_alphas": switches}


def pontryagin(prob: Problem, u, grad_forward=None, per_piece: int = 16, n_u: int = 201) -> dict[str, Any]:
    """Pontryagin's necessary conditions on a piecewise-constant schedule, with the costate of the adjoint ODE.

    Forward: the state on each piece (dense output).  Backward: p' = -(df/dx)^T p - rate grad(S + lam E),
    p(alpha_F) = grad Phi.  Returns the costate and sigma = p . df/du on ``per_piece`` points per piece, the
    adjoint gradient (Gauss-Legendre integral of sigma over each piece), and the conditions' residuals.
    """
    u = _check_u(prob, u)
    p, edges, K = prob.params, prob.edges, prob.segments
    z = np.array([p.R0, p.b0, 0.0])
    dense = []
    for k in range(K):
        sol = solve_ivp(_aug(prob, float(u[k]), False), (edges[k], edges[k + 1]), z, method="DOP853",
                        dense_output=True, rtol=RTOL, atol=ATOL)
        dense.append(sol.sol)
        z = sol.y[:, -1]
    _, gF = objective_terms(z[0], z[1], p, prob.eps_test, prob.lam)
    lam_end = np.array(gF, float)
    costate = [None] * K
    for k in reversed(range(K)):
        xs = dense[k]

        def back(a, q, xs=xs, uk=float(u[k])):
            x = xs(a)
            return costate_rhs(x[0], x[1], uk, q[0], q[1], p, eps_test=prob.eps_test, lam=prob.lam,
                               run_weight=prob.rate)

        sol = solve_ivp(back, (edges[k + 1], edges[k]), lam_end, method="DOP853", dense_output=True,
                        rtol=RTOL, atol=ATOL)
        costate[k] = sol.sol
        lam_end = sol.y[:, -1]
    zq, wq = roots_legendre(8)
    g_adj = np.empty(K)
    alphas, sig, pR, pb, uu, Hgap = [], [], [], [], [], []
    ugrid = np.linspace(0.0, prob.eps_max, n_u)
    for k in range(K):
        a0, a1 = edges[k], edges[k + 1]
        aq = a0 + 0.5 * (a1 - a0) * (zq + 1.0)
        x, q = dense[k](aq), costate[k](aq)
        g_adj[k] = 0.5 * (a1 - a0) * np.sum(wq * switching_function(x[0], x[1], u[k], q[0], q[1], p))
        at = np.linspace(a0, a1, per_piece + 1)[:-1] + 0.5 * (a1 - a0) / per_piece
        x, q = dense[k](at), costate[k](at)
        alphas += list(at)
        sig += list(switching_function(x[0], x[1], u[k], q[0], q[1], p))
        pR += list(q[0])
        pb += list(q[1])
        uu += [u[k]] * at.size
        am = 0.5 * (a0 + a1)
        xm, qm = dense[k](am), costate[k](am)
        H = hamiltonian(xm[0], xm[1], ugrid, qm[0], qm[1], p, eps_test=prob.eps_test, lam=prob.lam,
                        run_weight=prob.rate)
        Hk = hamiltonian(xm[0], xm[1], u[k], qm[0], qm[1], p, eps_test=prob.eps_test, lam=prob.lam,
                         run_weight=prob.rate)
        span = float(np.max(H) - np.min(H))
        Hgap.append({"alpha": float(am), "u": float(u[k]), "argmin_H": float(ugrid[int(np.argmin(H))]),
                     "gap": float(Hk - np.min(H)), "relative_gap": float((Hk - np.min(H)) / span) if span > 0 else 0.0})
    sig, uu = np.array(sig), np.array(uu)
    gscale = float(np.max(np.abs(g_adj))) or 1.0
    lo = u <= 1e-9
    hi = u >= prob.eps_max - 1e-9
    mid = ~lo & ~hi
    kkt = {"lower_min_grad": float(np.min(g_adj[lo])) if lo.any() else None,
           "upper_max_grad": float(np.max(g_adj[hi])) if hi.any() else None,
           "interior_max_abs_grad": float(np.max(np.abs(g_adj[mid]))) if mid.any() else None}
    slo = uu <= 1e-9
    shi = uu >= prob.eps_max - 1e-9
    sscale = float(np.max(np.abs(sig))) or 1.0
    sign = {"sigma_scale": sscale,
            "frac_sigma_nonneg_at_0": float(np.mean(sig[slo] >= -1e-6 * sscale)) if slo.any() else None,
            "frac_sigma_nonpos_at_eps_max": float(np.mean(sig[shi] <= 1e-6 * sscale)) if shi.any() else None}
    out = {"alpha": np.array(alphas), "sigma": sig, "pR": np.array(pR), "pb": np.array(pb), "u": uu,
           "grad_adjoint": g_adj, "grad_scale": gscale, "kkt": kkt, "sign": sign, "hamiltonian": Hgap,
           "max_relative_H_gap": float(max(h["relative_gap"] for h in Hgap))}
    if grad_forward is not None:
        out["grad_forward_vs_adjoint_max_abs"] = float(np.max(np.abs(np.asarray(grad_forward) - g_adj)))
    return out


def mc_objective(prob: Problem, u, N: int, replicas: int, seed: int, engine: str = "reduced") -> dict[str, Any]:
    """The objective of a schedule by the Monte Carlo (run_mc with eps_schedule): replica values."""
    from .mc import run_mc

    u = _check_u(prob, u)
    edges = prob.edges
    rec = np.unique(np.concatenate([edges, [prob.alpha_F]])) if prob.run_weight else np.array([0.0, prob.alpha_F])
    res = run_mc(prob.params.replace(eps=float(u[0])), N, replicas, rec, seed, engine=engine,
                 eps_test=prob.eps_test, progress=False, eps_schedule=(edges[:-1], u))
    vals = res.S[-1] + prob.lam * res.E[-1]
    if prob.run_weight:  # trapezoid over the piece edges (an approximation of the integral)
        inst = res.S + prob.lam * res.E
        vals = vals + prob.rate * np.trapezoid(inst, res.alpha, axis=0)
    return {"values": vals, "mean": float(vals.mean()), "se": float(vals.std(ddof=1) / math.sqrt(replicas)),
            "E_mean": float(res.E[-1].mean()), "S_mean": float(res.S[-1].mean()), "wall_s": res.info["wall_s"]}


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m simulate.protocol",
                            description="Optimal budget schedule eps(alpha) in [0, eps_max] for online adversarial "
                                        "training (ODE optimal control), checked by Pontryagin's conditions and "
                                        "by the Monte Carlo.")
    add_param_arguments(parser, exclude=("eps", "eps_law", "non_robust_only"))
    g = parser.add_argument_group("control problem")
    g.add_argument("--alpha-F", dest="alpha_F", type=real, default=50.0, metavar="X", help="horizon alpha_F [50]")
    g.add_argument("--eps-max", type=real, default=2.0, metavar="X", help="upper bound of eps(alpha) [2]")
    g.add_argument("--segments", type=int, default=20, help="pieces of the piecewise-constant schedule [20]")
    g.add_argument("--eps-test", type=real, default=1.0, metavar="X", help="test budget of S [1]")
    g.add_argument("--lam", type=real, default=0.0, metavar="X", help="weight of the clean error E [0]")
    g.add_argument("--run-weight", type=real, default=0.0, metavar="X",
                   help="weight of the running cost (1/alpha_F) int (S + lam E) dalpha [0]")
    m = parser.add_argument_group("Monte Carlo check")
    m.add_argument("--mc-N", type=int, default=10000, help="N [10000]")
    m.add_argument("--mc-replicas", type=int, default=128, help="replicas [128]")
    m.add_argument("--mc-seed", type=int, default=0, help="root seed (the same for every schedule) [0]")
    m.add_argument("--no-mc", action="store_true", help="skip the Monte Carlo")
    resources.add_force_argument(parser)
    parser.add_argument("--out", type=Path, default=None, metavar="PATH.json", help="write the result (JSON)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return parser


def solve(prob: Problem, mc: dict[str, Any] | None = None, log=print, scan: int = 41,
          progress: bool = False) -> dict[str, Any]:
    """Optimal, best constant and standard schedules with ODE objectives, Pontryagin checks and the MC;
    ``progress`` shows a tqdm bar over the stages on stderr."""
    from ..core.cli import progress_bar

    t0 = time.perf_counter()
    bar = progress_bar(6 + (3 if mc is not None else 0), "protocol", show=progress, unit="stage")
    bar.set_postfix_str("best constant eps")
    e_c, J_c = best_constant(prob, scan=scan)
    bar.update()
    log(f"best constant eps = {e_c:.5f}: J = {J_c:.6f}")
    starts = [np.zeros(prob.segments), np.full(prob.segments, prob.eps_max), np.full(prob.segments, e_c)]
    bar.set_postfix_str("optimal schedule (L-BFGS-B from 3 starts)")
    opt = optimise(prob, starts=starts, after_start=bar.update)
    log(f"optimal schedule: J = {opt['J']:.6f}")
    t_opt = time.perf_counter() - t0
    J_std = evaluate(prob, 0.0, grad=False)
    bar.set_postfix_str("Pontryagin's conditions")
    pmp = pontryagin(prob, opt["u"], grad_forward=opt["grad"])
    bar.update()
    bar.set_postfix_str("trajectories")
    schedules = {"optimal": opt["u"], "best_constant": np.full(prob.segments, e_c),
                 "standard": np.zeros(prob.segments)}
    out: dict[str, Any] = {
        "problem": {"params": prob.params.as_dict(), "alpha_F": prob.alpha_F, "eps_max": prob.eps_max,
                    "segments": prob.segments, "eps_test": prob.eps_test, "lam": prob.lam,
                    "run_weight": prob.run_weight, "edges": prob.edges},
        "objective_ode": {"optimal": opt["J"], "best_constant": J_c, "standard": J_std},
        "best_constant_eps": e_c, "schedule": opt["u"], "gradient_forward": opt["grad"], "optimiser_runs": opt["runs"],
        "classification": classify(prob, opt["u"]), "pontryagin": pmp, "optimise_wall_s": t_opt,
        "trajectories": {k: trajectory(prob, v) for k, v in schedules.items()},
    }
    bar.update()
    if mc is not None:
        res = {}
        for k, v in schedules.items():
            bar.set_postfix_str(f"Monte Carlo, {k} schedule (N = {mc['N']}, {mc['replicas']} replicas)")
            res[k] = mc_objective(prob, v, mc["N"], mc["replicas"], mc["seed"])
            bar.update()
            log(f"MC {k}: {res[k]['mean']:.5f} ± {res[k]['se']:.5f}")
        diffs = {}
        for a, b in (("optimal", "best_constant"), ("optimal", "standard"), ("best_constant", "standard")):
            d = res[a]["values"] - res[b]["values"]
            diffs[f"{a}-{b}"] = {"mean": float(d.mean()), "se": float(d.std(ddof=1) / math.sqrt(d.size))}
        out["mc"] = {"N": mc["N"], "replicas": mc["replicas"], "seed": mc["seed"], "engine": "reduced",
                     "objective": {k: {kk: vv for kk, vv in r.items() if kk != "values"} for k, r in res.items()},
                     "paired_differences": diffs}
    bar.close()
    out["wall_s"] = time.perf_counter() - t0
    return out


@command
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    params = params_from_args(parser, args, eps=0.0)
    if args.mc_N < 2 or args.mc_replicas < 2 or args.mc_seed < 0:
        parser.error("--mc-N and --mc-replicas must be integers >= 2 and --mc-seed >= 0")
    if args.out is not None and args.out.suffix.lower() != ".json":
        parser.error(f"--out must end in .json, got {args.out}")
    if args.out is not None:
        claim_output(parser, "--out", args.out, overwrite=args.overwrite)
    try:
        prob = Problem(params=params, alpha_F=args.alpha_F, eps_max=args.eps_max, segments=args.segments,
                       eps_test=args.eps_test, lam=args.lam, run_weight=args.run_weight)
    except ParameterError as err:
        parser.error(str(err).replace("alpha_F", "--alpha-F").replace("eps_max", "--eps-max"))
    with one_line_errors(parser):  # before anything is allocated or optimised
        resources.check(resources.protocol(prob.segments, mc=None if args.no_mc else (args.mc_N, args.mc_replicas),
                                           alpha_F=prob.alpha_F), force=args.force)
    log = (lambda s: None) if args.quiet else print
    mc = None if args.no_mc else {"N": args.mc_N, "replicas": args.mc_replicas, "seed": args.mc_seed}
    out = solve(prob, mc, log, progress=not args.quiet)
    if not args.quiet:
        print(report(out))
    if args.out is not None:
        run_args = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        write_json(args.out, {"provenance": provenance(params=params, seeds=mc, run=run_args), "result": out})
        log(f"wrote {args.out}")
    return 0


def report(out: dict[str, Any]) -> str:
    pr = out["problem"]
    lines = [f"# optimal eps(alpha) in [0, {pr['eps_max']:g}], alpha_F = {pr['alpha_F']:g}, {pr['segments']} pieces; "
             f"J = S(eps_test={pr['eps_test']:g}) + {pr['lam']:g} E at alpha_F"
             + (f" + {pr['run_weight']:g} mean over training" if pr["run_weight"] else "")]
    lines.append("schedule: " + " ".join(f"{v:.3f}" for v in out["schedule"]))
    c = out["classification"]
    lines.append(f"bang-bang: {c['bang_bang']} (pieces at 0: {c['pieces_at_0']}, at eps_max: {c['pieces_at_eps_max']}, "
                 f"interior: {c['pieces_interior']}; switches at alpha = {c['switch_alphas']})")
    lines.append(f"{'schedule':15} {'J (ODE)':>10}" + (f" {'J (MC mean ± se)':>22}" if "mc" in out else ""))
    for k in ("optimal", "best_constant", "standard"):
        row = f"{k:15} {out['objective_ode'][k]:10.6f}"
        if "mc" in out:
            m = out["mc"]["objective"][k]
            row += f" {m['mean']:12.6f} ± {m['se']:.6f}"
        lines.append(row)
    if "mc" in out:
        for k, d in out["mc"]["paired_differences"].items():
            lines.append(f"MC paired difference {k}: {d['mean']:+.6f} ± {d['se']:.6f}")
    pm = out["pontryagin"]
    lines.append(f"Pontryagin: |grad forward - grad adjoint| = {pm.get('grad_forward_vs_adjoint_max_abs', float('nan')):.2e}; "
                 f"KKT {pm['kkt']}; sign {pm['sign']}; max relative H gap {pm['max_relative_H_gap']:.2e}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
