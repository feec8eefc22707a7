"""Exact samplers, explicit worst-case perturbations, Monte Carlo checks and the trade-off command.

    python -m simulate.tradeoff lp --d 200 --a 1 2 4 --p0 0.9 0.99      # l_inf vs l_1 table
    python -m simulate.tradeoff ring --d 200 --a 2 --p0 0.95 --t 1      # l_inf vs rotation-translation
    python -m simulate.tradeoff bridge --rho 2 --eps 1 --alpha 200      # ODE state vs l_inf / l_1

Samplers draw from the distributions of :mod:`theory.tradeoff_lp` and :mod:`theory.tradeoff_spatial`
exactly (numpy ``default_rng`` with explicit seeds).  Perturbations are built as explicit vectors inside
the threat's ball (their norms are returned so tests can check the constraint), so the Monte Carlo
accuracies check the closed forms rather than repeat them.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from theory.params import ParameterError, Params, check_range
from theory.tradeoff import Threat
from theory.tradeoff_lp import (LinearClassifier, LpModel, affine_accuracy, clean_accuracy, coupling_bound,
                                coupling_budget_threshold, frontier, robust_accuracy,
                                union_accuracy)
from theory.tradeoff_spatial import RingModel, ring_coupling_bound, ring_frontier

from ..core.cli import (ArgumentParser, add_output_arguments, add_param_arguments, as_flag_message, check_outputs,
                  one_line_errors, params_from_args, real)
from ..core.provenance import provenance, write_json
from ..core.cli import command

__all__ = ["sample_lp", "sample_ring", "lp_worst_perturbation", "lp_mc_accuracy", "lp_coupling_points",
           "ring_mc_accuracy", "ring_coupling_points", "bridge_vectors", "bridge_mc_error", "binomial_se",
           "lp_table", "ring_table", "main"]

FRONTIER_TARGETS = (0.6, 0.7, 0.8, 0.9)


def binomial_se(p: float, n: int) -> float:
    """Standard error of a Monte Carlo proportion, floored at p = 1/n so that it is never 0."""
    p = min(max(p, 1.0 / n), 1.0 - 1.0 / n)
    return math.sqrt(p * (1.0 - p) / n)


# ---------------------------------------------------------------------------------------------
# The l_p distribution.
# ---------------------------------------------------------------------------------------------
def sample_lp(model: LpModel, n: int, rng: np.random.Generator):
    """(y, x0, xw): y uniform +-1, x0 = y w.p. p0 else -y, xw ~ N(y eta, I_d); shapes (n,), (n,), (n, d)."""
    y = rng.choice(np.array([-1.0, 1.0]), size=n)
    x0 = np.where(rng.random(n) < model.p0, y, -y)
    xw = y[:, None] * model.eta + rng.standard_normal((n, model.d))
    return y, x0, xw


def lp_worst_perturbation(clf: LinearClassifier, threat: Threat, y, perturb_x0: bool = True):
    """The worst-case perturbation (r0, rw) of each example, an explicit point of the threat's ball.

    linf: -y eps sign(u); l1: -y eps sign(u_j) e_j at j = argmax |u_j|; l2: -y eps u/|u|, u = (w0, w).
    """
    u = np.concatenate([[clf.w0 if perturb_x0 else 0.0], clf.w])
    y = np.asarray(y, float)[:, None]
    if threat.kind == "linf":
        r = -y * threat.eps * np.sign(u)[None, :]
    elif threat.kind == "l1":
        j = int(np.argmax(np.abs(u)))
        e = np.zeros_like(u)
        e[j] = np.sign(u[j]) if u[j] != 0 else 0.0
        r = -y * threat.eps * e[None, :]
    elif threat.kind == "l2":
        norm = float(np.sqrt(u @ u))
        r = -y * threat.eps * (u / norm if norm > 0 else 0 * u)[None, :]
    else:
        raise ParameterError(f"threat {threat.kind!r} is not an l_p ball")
    return r[:, 0], r[:, 1:]


def lp_mc_accuracy(clf: LinearClassifier, y, x0, xw, threats: Sequence[Threat] = (), *, beta: float | None = None,
                   perturb_x0: bool = True) -> np.ndarray:
    """Per-example correctness (boolean) under the explicit worst cases.

    No threat: clean.  One or more threats, beta None: the union (AND across the threats).  Two threats
    and beta: the affine combination beta r_a + (1 - beta) r_b of the two worst cases.
    """
    if not threats:
        return y * clf.score(x0, xw) > 0
    pert = [lp_worst_perturbation(clf, t, y, perturb_x0) for t in threats]
    if beta is not None:
        (ra0, raw), (rb0, rbw) = pert
        pert = [(beta * ra0 + (1 - beta) * rb0, beta * raw + (1 - beta) * rbw)]
    ok = np.ones(len(y), dtype=bool)
    for r0, rw in pert:
        ok &= y * clf.score(x0 + r0, xw + rw) > 0
    return ok


def lp_coupling_points(model: LpModel, y, x0, xw, eps_inf: float, eps_1: float):
    """The points of the coupling proof (docs/tradeoffs.md, Theorem 1) and the norms of the moves.

    l_inf point: x0 -> x0 (1 - t), t = min(eps_inf, 2); weak -> weak - y min(eps_inf, 2 eta).
    l_1 point:   x0 -> -x0 (1 - t) (cost 2 - t); weak -> weak - y min(r/d, 2 eta - e'), r the rest of eps_1.
    Returns ((x0_inf, xw_inf), (x0_1, xw_1), max l_inf norm, max l_1 norm).
    """
    t = min(eps_inf, 2.0)
    e_w = min(eps_inf, 2.0 * model.eta)
    y = np.asarray(y, float)
    x0_inf = x0 * (1.0 - t)
    xw_inf = xw - y[:, None] * e_w
    r = max(eps_1 - (2.0 - t), 0.0)
    if eps_1 >= 2.0 - t:
        x0_1 = -x0 * (1.0 - t)
        shift = min(r / model.d, max(2.0 * model.eta - e_w, 0.0))
    else:
        x0_1, shift = x0.copy(), 0.0  # no coupling: the l_1 point is the clean one
    xw_1 = xw - y[:, None] * shift
    ninf = max(float(np.max(np.abs(x0_inf - x0))), float(np.max(np.abs(xw_inf - xw))))
    n1 = float(np.max(np.abs(x0_1 - x0) + np.sum(np.abs(xw_1 - xw), axis=1)))
    return (x0_inf, xw_inf), (x0_1, xw_1), ninf, n1


# ---------------------------------------------------------------------------------------------
# The ring-image distribution.
# ---------------------------------------------------------------------------------------------
def sample_ring(model: RingModel, n: int, rng: np.random.Generator):
    """(y, x0, x): x = x0 s + y eta 1 + (g - s (s.g)/d), g ~ N(0, I_d); shapes (n,), (n,), (n, d)."""
    y = rng.choice(np.array([-1.0, 1.0]), size=n)
    x0 = np.where(rng.random(n) < model.p0, y, -y)
    s = model.s
    g = rng.standard_normal((n, model.d))
    g -= np.outer(g @ s / model.d, s)
    return y, x0, x0[:, None] * s + y[:, None] * model.eta + g


def ring_mc_accuracy(score: Callable[[np.ndarray], np.ndarray], y, x, *, eps_inf: float = 0.0,
                     u: np.ndarray | None = None, t: int = 0, mode: str = "clean", beta: float = 0.5):
    """Per-example correctness of a score function on ring images under explicit perturbations.

    mode: 'clean'; 'linf' (r = -y eps sign(u), the worst case for the linear score with weights u);
    'rt' (all shifts |k| <= t, np.roll); 'union' (AND of linf and rt); 'affine' (min over k of
    beta (x + r) + (1 - beta) S_k x).
    """
    y = np.asarray(y, float)
    shifts = range(-int(t), int(t) + 1)
    r = None if u is None else -y[:, None] * eps_inf * np.sign(u)[None, :]
    if mode == "clean":
        return y * score(x) > 0
    if mode == "linf":
        return y * score(x + r) > 0
    if mode in ("rt", "union"):
        ok = np.ones(len(y), dtype=bool)
        for k in shifts:
            ok &= y * score(np.roll(x, k, axis=1)) > 0
        if mode == "union":
            ok &= y * score(x + r) > 0
        return ok
    if mode == "affine":
        ok = np.ones(len(y), dtype=bool)
        for k in shifts:
            ok &= y * score(beta * (x + r) + (1 - beta) * np.roll(x, k, axis=1)) > 0
        return ok
    raise ParameterError(f"mode must be clean, linf, rt, union or affine, got {mode!r}")


def ring_coupling_points(model: RingModel, y, x, eps_inf: float):
    """l_inf point x - y min(eps_inf, 2 eta) 1 and rotation-translation point S_1 x (one pixel)."""
    y = np.asarray(y, float)
    return x - y[:, None] * min(eps_inf, 2.0 * model.eta), np.roll(x, 1, axis=1)


# ---------------------------------------------------------------------------------------------
# The bridge: Gaussian mixture at finite N.
# ---------------------------------------------------------------------------------------------
def bridge_vectors(N: int, R: float, structure: str, rng: np.random.Generator, kappa: float = 1.0):
    """(B, w): B aligned (e_1), spread (+-1/sqrt N) or sparse (kappa N coordinates); w = R B + sqrt(1-R^2)
    w_perp with w_perp uniform on the unit sphere orthogonal to B."""
    B = np.zeros(N)
    if structure == "aligned":
        B[0] = 1.0
    elif structure in ("spread", "sparse"):
        n_supp = N if structure == "spread" else max(1, int(round(kappa * N)))
        B[:n_supp] = rng.choice(np.array([-1.0, 1.0]), size=n_supp) / math.sqrt(n_supp)
    else:
        raise ParameterError(f"structure must be aligned, spread or sparse, got {structure!r}")
    g = rng.standard_normal(N)
    g -= (g @ B) * B
    w = R * B + math.sqrt(max(1.0 - R * R, 0.0)) * g / np.linalg.norm(g)
    return B, w


def bridge_mc_error(params: Params, R: float, b: float, N: int, structure: str, threat: str, eps: float, n: int,
                    rng: np.random.Generator, kappa: float = 1.0, chunk: int = 2000) -> dict:
    """Monte Carlo error of sign(w.xi - b) on sampled xi under the explicit worst-case perturbation.

    xi = tau (rho/2) B + sqrt(v_tau) z is sampled in full (N coordinates); the perturbation is the vector
    -tau eps sign(w) (linf) or -tau eps sign(w_j) e_j, j = argmax |w_j| (l1).  Returns the error, its
    standard error, the realised ||w||_1, ||w||_inf and R.
    """
    B, w = bridge_vectors(N, R, structure, rng, kappa)
    if threat == "linf":
        delta = -eps * np.sign(w)
    elif threat == "l1":
        delta = np.zeros(N)
        j = int(np.argmax(np.abs(w)))
        delta[j] = -eps * np.sign(w[j])
    else:
        raise ParameterError(f"threat must be linf or l1, got {threat!r}")
    errors = 0
    done = 0
    while done < n:
        m = min(chunk, n - done)
        tau = np.where(rng.random(m) < params.prior, 1.0, -1.0)
        v = np.where(tau > 0, params.v1, params.v2)
        xi = (tau * params.rho / 2)[:, None] * B + np.sqrt(v)[:, None] * rng.standard_normal((m, N))
        xi += tau[:, None] * delta[None, :]
        errors += int(np.sum(tau * (xi @ w - b) <= 0))
        done += m
    p = errors / n
    return {"error": p, "se": binomial_se(p, n), "l1": float(np.abs(w).sum()), "linf": float(np.abs(w).max()),
            "R": float(w @ B), "n": n}


# ---------------------------------------------------------------------------------------------
# Tables.
# ---------------------------------------------------------------------------------------------
def _cases(model_class, d: int, a_values, p0_values, progress: bool, desc: str):
    """The (a, p0, model) triples of a table, through a tqdm bar on stderr when ``progress``; every model
    is built (and so validated) before the bar starts, so that bad input gives its one-line error alone."""
    from ..core.cli import progress_bar

    cases = [(a, p0, model_class(d=d, a=a, p0=p0)) for a, p0 in itertools.product(a_values, p0_values)]
    with progress_bar(len(cases), desc, show=progress, unit="row") as bar:
        for case in cases:
            yield case
            bar.update()


def lp_table(d: int, a_values, p0_values, eps_inf: float | None, eps_1: float, *, grid=(481, 241, 8),
             targets=FRONTIER_TARGETS, progress: bool = False) -> list[dict]:
    """One row per (a, p0): budgets, coupling bound and the linear frontier (lower, upper) at the targets."""
    rows = []
    for a, p0, model in _cases(LpModel, d, a_values, p0_values, progress, "lp frontier"):
        e_inf = 2.0 * model.eta if eps_inf is None else eps_inf
        fr = frontier(model, Threat("linf", e_inf), Threat("l1", eps_1), targets=targets,
                      n_theta=grid[0], n_psi=grid[1], n_tau=grid[2])
        rows.append({
            "d": d, "a": a, "p0": p0, "eta": model.eta, "eps_inf": e_inf, "eps_1": eps_1,
            "eps_1_needed": coupling_budget_threshold(model, e_inf),
            "coupling_bound": coupling_bound(model, e_inf, eps_1),
            "best_inf": fr.best_a, "best_1": fr.best_b, "best_union": fr.best_union, "best_sum": fr.best_sum,
            "frontier": {f"{t:g}": [fr.F_sym[i], fr.F[i], fr.envelope[i]] for i, t in enumerate(fr.t)},
        })
    return rows


def ring_table(d: int, a_values, p0_values, eps_inf: float | None, t: int, *, grid=(481, 241),
               targets=FRONTIER_TARGETS, progress: bool = False) -> list[dict]:
    rows = []
    for a, p0, model in _cases(RingModel, d, a_values, p0_values, progress, "ring frontier"):
        e_inf = 2.0 * model.eta if eps_inf is None else eps_inf
        fr = ring_frontier(model, Threat("linf", e_inf), Threat("rt", t), targets=targets, n_theta=grid[0],
                           n_psi=grid[1])
        rows.append({
            "d": d, "a": a, "p0": p0, "eta": model.eta, "eps_inf": e_inf, "t": t,
            "coupling_bound": ring_coupling_bound(model, e_inf, t), "best_inf": fr.best_inf,
            "best_rt": fr.best_rt, "best_union": fr.best_union, "best_sum": fr.best_sum,
            "frontier": {f"{x:g}": [fr.F[i], fr.envelope[i]] for i, x in enumerate(fr.t)},
        })
    return rows


def _fmt(x) -> str:
    return "   nan" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:6.4f}"


def _format_table(rows, head: str, family: str, middle) -> str:
    """The table of lp/ring rows: a, p0, eta, eps_inf, the threat-specific ``middle(row)``, the bounds, and
    the frontier F(acc_inf >= t) for each target t (``family`` names the values of one frontier cell)."""
    lines = [head + "  ".join(f"F(acc_inf>={t}) {family}" for t in rows[0]["frontier"])]
    for r in rows:
        fr = "  ".join("/".join(_fmt(v) for v in vals) for vals in r["frontier"].values())
        lines.append(f"{r['a']:5g} {r['p0']:6g} {r['eta']:.4f} {r['eps_inf']:.4f} {middle(r)}  {_fmt(r['coupling_bound'])} "
                     f"{_fmt(r['best_inf'])} {_fmt(r.get('best_1', r.get('best_rt')))} {_fmt(r['best_union'])} "
                     f"{_fmt(r['best_sum'])}  {fr}")
    return "\n".join(lines)


def format_lp(rows) -> str:
    return _format_table(rows, "#   a     p0     eta  eps_inf eps_1 eps_1*  bound  best_inf best_1 union  max_sum  ",
                         "sym/lin/env", lambda r: f"{r['eps_1']:5g} {r['eps_1_needed']:.3f}")


def format_ring(rows) -> str:
    return _format_table(rows, "#   a     p0     eta  eps_inf t  bound  best_inf best_rt union  max_sum  ",
                         "lin/env", lambda r: f"{r['t']:2d}")


# ---------------------------------------------------------------------------------------------
# The command.
# ---------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m simulate.tradeoff", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    def common(p, spatial: bool):
        p.add_argument("--d", type=int, default=200, help="number of weak features / ring pixels [200]")
        p.add_argument("--a", type=real, nargs="+", default=[2.0], help="weak signal a, eta = a/sqrt(d) (> 0) [2]")
        p.add_argument("--p0", type=real, nargs="+", default=[0.95], help="P(x0 = y) (0 <= p0 <= 1) [0.95]")
        p.add_argument("--eps-inf", type=real, default=None, help="l_inf budget [2 eta, the coupling threshold]")
        p.add_argument("--n-theta", type=int, default=481, help="grid over the weight direction [481]")
        p.add_argument("--n-psi", type=int, default=241, help="grid over the bias [241]")
        _add_output(p)

    lp = sub.add_parser("lp", help="l_inf versus l_1: bounds and frontier of linear classifiers")
    common(lp, False)
    lp.add_argument("--eps-1", type=real, default=2.0, help="l_1 budget [2]")
    lp.add_argument("--n-tau", type=int, default=8, help="grid over the weak-noise norm [8]")
    lp.add_argument("--clf", type=real, nargs=3, metavar=("W0", "WZ", "C"), default=None,
                    help="also evaluate sign(W0 x0 + WZ z + C), z = sum x_i/sqrt d: each threat, union, affine")
    lp.add_argument("--eps-2", type=real, default=1.0, help="l_2 budget for --clf [1]")
    ring = sub.add_parser("ring", help="l_inf versus rotation-translation of a ring image")
    common(ring, True)
    ring.add_argument("--t", type=int, default=1, help="largest shift/rotation in pixels (>= 0) [1]")
    br = sub.add_parser("bridge", help="l_inf / l_1 errors of the ODE state of l2 adversarial training")
    add_param_arguments(br)
    br.add_argument("--alpha", type=real, nargs="+", default=[10.0, 50.0, 200.0], help="learning times [10 50 200]")
    br.add_argument("--eps-inf-hat", type=real, default=1.0, help="l_inf budget times sqrt(N) [1]")
    br.add_argument("--eps-1-hat", type=real, default=1.0,
                    help="l_1 budget (aligned B), or budget / sqrt(N/(2 ln N)) (spread B) [1]")
    br.add_argument("--N", type=int, default=None, help="finite N for the expected norms [limit N -> inf]")
    _add_output(br)
    return parser


def _add_output(p) -> None:
    add_output_arguments(p, "write the rows with provenance to this .json file")
    p.add_argument("--json", dest="out", type=Path, default=None, help="the same as --out (older name)")


#: Valid range of every numeric flag: (low, high, open ends, reason). Checked before any work.
FLAG_RANGES = {
    "d": (1, 1e9, "[]", "feature count; eta = a/sqrt(d) stays resolvable"),
    "a": (0, 100, "(]", "weak signal; beyond 100 every accuracy is 1 to double precision"),
    "p0": (0, 1, "[]", "a probability"),
    "eps_inf": (0, 1e3, "[]", "a budget; beyond, every accuracy is 0"),
    "eps_1": (0, 1e3, "[]", "a budget; beyond, every accuracy is 0"),
    "eps_2": (0, 1e3, "[]", "a budget; beyond, every accuracy is 0"),
    "n_theta": (8, 20001, "[]", "grid points; the grid is n_theta x n_psi (x n_tau) doubles in memory"),
    "n_psi": (3, 10001, "[]", "grid points; the grid is n_theta x n_psi (x n_tau) doubles in memory"),
    "n_tau": (0, 1000, "[]", "grid points over the weak-noise norm"),
    "t": (0, 1e4, "[]", "shifts in pixels; each adds one candidate image"),
    "alpha": (0, 1e6, "[]", "learning time, as in simulate.ode"),
    "eps_inf_hat": (0, 1e3, "[]", "a scaled budget; beyond, every error is 1"),
    "eps_1_hat": (0, 1e3, "[]", "a scaled budget; beyond, every error is 1"),
    "N": (2, 2.0**53, "[]", "a dimension, exact in float64"),
    "clf": (-1e6, 1e6, "[]", "classifier coefficients; their scale does not matter, only finiteness"),
}
GRID_CELLS_MAX = 50_000_000  # n_theta x n_psi x max(n_tau, 1) doubles: 400 MB


def _validate(args) -> None:
    """Every numeric flag within its FLAG_RANGES interval (ParameterError naming the flag otherwise)."""
    for name, (lo, hi, ends, why) in FLAG_RANGES.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        for v in (value if isinstance(value, list) else [value]):
            check_range(name, v, lo, hi, ends, why)
    if hasattr(args, "n_theta"):
        cells = args.n_theta * args.n_psi * max(getattr(args, "n_tau", 1), 1)
        if cells > GRID_CELLS_MAX:
            raise ParameterError(f"n_theta x n_psi x n_tau = {cells} grid cells exceed {GRID_CELLS_MAX} (memory)")
    if getattr(args, "clf", None) is not None and args.clf[0] == 0 and args.clf[1] == 0:
        raise ParameterError("clf: W0 and WZ are both 0, so sign(C) ignores the input")


def _check_grid(parser, args):
    if args.n_theta < 8 or args.n_psi < 3:
        parser.error("--n-theta must be >= 8 and --n-psi >= 3")
    if args.d < 1:
        parser.error(f"--d must be >= 1, got {args.d}")
    for name in ("a", "p0"):
        for v in getattr(args, name):
            if not math.isfinite(v):
                parser.error(f"--{name} must be finite, got {v}")
    for name in ("eps_inf", "eps_1"):
        v = getattr(args, name, None)
        if v is not None and not (math.isfinite(v) and v >= 0):
            parser.error(f"--{name.replace('_', '-')} must be finite and >= 0, got {v}")


@command
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        with one_line_errors(parser):
            _validate(args)
            check_outputs(args, stack, out_suffixes=(".json",))
        return _run(parser, args)


def _run(parser, args) -> int:
    say = (lambda *a, **k: None) if args.quiet else print
    try:
        if args.command == "lp":
            _check_grid(parser, args)
            if args.n_tau < 0:
                parser.error(f"--n-tau must be >= 0, got {args.n_tau}")
            rows = lp_table(args.d, args.a, args.p0, args.eps_inf, args.eps_1,
                            grid=(args.n_theta, args.n_psi, args.n_tau), progress=not args.quiet)
            say(f"# l_inf vs l_1 (Tramer & Boneh 2019 distribution), d = {args.d}; bound: acc_inf + acc_1 <= bound"
                  " for EVERY classifier; F: max acc_1 s.t. acc_inf >= t over linear classifiers, "
                  "sym = (x0, z) family, lin = explicit linear (lower bound), env = concave envelope (upper bound)")
            say(format_lp(rows))
            if args.clf is not None:
                rows_clf = []
                for r in rows:
                    model = LpModel(d=args.d, a=r["a"], p0=r["p0"])
                    clf = LinearClassifier.symmetric(args.d, *args.clf)
                    ti, t1, t2 = Threat("linf", r["eps_inf"]), Threat("l1", r["eps_1"]), Threat("l2", args.eps_2)
                    betas = np.linspace(0, 1, 5)
                    rc = {"a": r["a"], "p0": r["p0"], "clean": clean_accuracy(model, clf),
                          "linf": robust_accuracy(model, clf, ti), "l1": robust_accuracy(model, clf, t1),
                          "l2": robust_accuracy(model, clf, t2), "union": union_accuracy(model, clf, (ti, t1, t2)),
                          "affine_linf_l1": dict(zip([f"{b:g}" for b in betas],
                                                     affine_accuracy(model, clf, ti, t1, betas).tolist()))}
                    rows_clf.append(rc)
                    say(f"# clf {args.clf} a={r['a']:g} p0={r['p0']:g}: clean {rc['clean']:.4f} linf {rc['linf']:.4f}"
                          f" l1 {rc['l1']:.4f} l2({args.eps_2:g}) {rc['l2']:.4f} union {rc['union']:.4f}; affine"
                          f" beta*linf+(1-beta)*l1: " + " ".join(f"{k}:{v:.4f}" for k, v in rc["affine_linf_l1"].items()))
                rows = {"table": rows, "classifier": rows_clf}
        elif args.command == "ring":
            _check_grid(parser, args)
            if args.t < 0:
                parser.error(f"--t must be >= 0, got {args.t}")
            rows = ring_table(args.d, args.a, args.p0, args.eps_inf, args.t, grid=(args.n_theta, args.n_psi),
                              progress=not args.quiet)
            say(f"# l_inf vs rotation-translation (ring image, d = {args.d} pixels, shifts |k| <= {args.t}); bound: "
                  "acc_inf + acc_rt <= bound for EVERY classifier; F over sign(w0 x0 + wz z + c): lin = achieved, "
                  "env = concave envelope")
            say(format_ring(rows))
        else:
            from ..linear.ode import integrate

            params = params_from_args(parser, args)
            alphas = sorted(set([0.0] + [float(a) for a in args.alpha]))
            if any(not (math.isfinite(a) and a >= 0) for a in alphas):
                parser.error("--alpha must be finite and >= 0")
            if args.N is not None and args.N < 2:
                parser.error(f"--N must be >= 2, got {args.N}")
            from theory.bridge import evaluate_state

            traj = integrate(params, np.asarray(alphas))
            rows = []
            say(f"# l2 adversarial training (ODE), then l_inf (eps_hat/sqrt N) and l_1 errors; "
                  f"{'N -> inf' if args.N is None else f'N = {args.N}'}; eps_inf_hat={args.eps_inf_hat:g} "
                  f"eps_1_hat={args.eps_1_hat:g}")
            say("   alpha         R          b       E    S_l2  S_inf(al) S_inf(sp)  S_1(al)  S_1(sp)")
            for a, R, b in zip(traj.alpha, traj.R, traj.b):
                row = {"alpha": float(a), "R": float(R), "b": float(b)}
                for st in ("aligned", "spread"):
                    ev = evaluate_state(float(R), float(b), params, eps_l2=traj.eps_test, eps_inf_hat=args.eps_inf_hat,
                                        eps_1_hat=args.eps_1_hat, structure=st, N=args.N)
                    row.update({"E": ev["E"], "S_l2": ev["S_l2"], f"S_linf_{st}": ev["S_linf"],
                                f"S_l1_{st}": ev["S_l1"]})
                rows.append(row)
                say(f"{a:8g} {R:9.6f} {b:10.6f} {row['E']:7.4f} {row['S_l2']:7.4f} {row['S_linf_aligned']:9.4f} "
                      f"{row['S_linf_spread']:9.4f} {row['S_l1_aligned']:8.4f} {row['S_l1_spread']:8.4f}")
    except ParameterError as err:
        parser.error(as_flag_message(err))
    if args.out is not None:
        params_out = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "out"}
        write_json(args.out, {"provenance": provenance(params=params_out, seeds=None), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
