"""Engines of a parameter sweep: what is computed at a block of grid points.

An engine turns a list of points (each a dict of :class:`theory.Params` fields, plus the engine's own
sweepable fields such as ``N``) into arrays of results, one row per point.  Engines live in a small
registry, ``ENGINES``; another model registers its own engine with :func:`register_engine` and the sweep
machinery (grids, backends, resume, the data set) is unchanged.

Registered here:

``ode``  the large-N ODEs, vectorised over the block (one ``solve_ivp`` for all points of the same string
         fields), the baseline of standard training (eps = 0, every budget option off) at the same point,
         and the fixed point reached from the final state with its Jacobian eigenvalues.
``mc``   the Monte Carlo of the N-dimensional SGD (:func:`simulate.mc.run_mc`) at one point per task; the
         replica mean and standard error of R, b, E, S.  Each point's seed comes from the root seed and
         the point's parameter key, so the numbers at a point do not depend on the grid around it.

Time unit: alpha = steps/N.  S is the adversarial error at the test budget ``eps_test`` (default 1, the
talk's value, for every point of the grid, so that points with different training budgets compare).
"""

from __future__ import annotations

import abc
import time
from dataclasses import fields
from typing import Any

import numpy as np

from theory.errors import adversarial_error, test_error
from theory.ode import drift
from theory.params import ParameterError, Params

from ..core import resources
from ..core.grid import check_eps_test, check_tolerances
from ..linear.ode import integrate_grid

__all__ = ["SweepEngine", "ReplicaSweepEngine", "ODEEngine", "MCEngine", "ENGINES", "register_engine",
           "get_engine", "fixed_point_newton", "point_seed", "check_ints", "check_ode_options"]

_NUMERIC = ("rho", "prior", "v1", "v2", "eta_w", "eta_b", "eps")
# one solve per combination of these (erf_scale too: the quadrature backends take it as a scalar)
_STRINGS = ("eps_law", "loss", "non_robust_only", "erf_scale")


class SweepEngine(abc.ABC):
    """What one engine computes at a block of points.

    ``outputs(options)`` names every result variable with its extra dimensions (beyond the grid), and
    ``coords(options)`` gives their coordinates; ``compute(points, options)`` returns, for each variable,
    an array of shape (len(points), *extra).  ``compute`` must be a pure function of its arguments (the
    same points and options give the same numbers on any machine and any backend).
    """

    name = ""
    params_cls: type = Params  # the parameter dataclass whose fields are the grid's axes and the model flags
    extra_fields: tuple[str, ...] = ()  # sweepable fields that are not fields of params_cls
    default_chunk = 1
    defaults: dict[str, Any] = {}

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        unknown = set(options) - set(self.defaults)
        if unknown:
            raise ParameterError(f"engine {self.name!r} has no option(s) {', '.join(sorted(unknown))}; "
                                 f"options: {', '.join(self.defaults)}")
        return {**self.defaults, **options}

    def check_point(self, point: dict[str, Any]) -> None:
        """Raise ParameterError when a point is invalid (the default: its parameters must validate)."""
        self.params_of(point)

    def params_of(self, point: dict[str, Any]):
        """The validated ``params_cls`` of a point (its other keys are the engine's extra fields)."""
        names = set(self.params_cls.field_names())
        return self.params_cls(**{k: v for k, v in point.items() if k in names})

    @abc.abstractmethod
    def outputs(self, options: dict[str, Any]) -> dict[str, tuple[str, ...]]: ...

    def coords(self, options: dict[str, Any]) -> dict[str, np.ndarray]:
        return {}

    @abc.abstractmethod
    def compute(self, points: list[dict[str, Any]], options: dict[str, Any]) -> dict[str, np.ndarray]: ...


ENGINES: dict[str, SweepEngine] = {}


def register_engine(engine: SweepEngine) -> SweepEngine:
    if not engine.name or engine.name in ENGINES:
        raise ValueError(f"engine name {engine.name!r} is empty or registered twice")
    ENGINES[engine.name] = engine
    return engine


def get_engine(name: str) -> SweepEngine:
    if name not in ENGINES:
        raise ParameterError(f"engine must be one of {', '.join(ENGINES)}, got {name!r}")
    return ENGINES[name]


def params_of(point: dict[str, Any]) -> Params:
    names = set(Params.field_names())
    return Params(**{k: v for k, v in point.items() if k in names})


def sweep_alphas(options: dict[str, Any]) -> np.ndarray:
    a = np.asarray(options["alphas"], dtype=float).ravel()
    if a.size == 0 or not np.all(np.isfinite(a)) or a[0] <= 0 or np.any(np.diff(a) <= 0):
        raise ParameterError("alphas must be an increasing list of finite values > 0")
    return a


# ---------------------------------------------------------------------------------------------------
# ODE engine
# ---------------------------------------------------------------------------------------------------
def fixed_point_newton(R, b, *, h=1e-6, tol=1e-11, max_iter=40, **kw):
    """Newton's method on (dR, db) = 0 for many states at once, Jacobian by central differences.

    Started from the end points of trajectories.  Returns (R*, b*, eigenvalues (M, 2) complex, converged).
    A step that would leave |R| <= 1 is halved until it does not.  Not converged: NaN.
    """
    R = np.array(R, float)
    b = np.array(b, float)

    def F(R, b):
        dR, db = drift(R, b, **kw)
        return np.broadcast_to(dR, R.shape).copy(), np.broadcast_to(db, R.shape).copy()

    def jac(R, b):
        a = [(F(R + h, b), F(R - h, b)), (F(R, b + h), F(R, b - h))]
        J = np.empty(R.shape + (2, 2))
        for j, (fp, fm) in enumerate(a):
            J[..., 0, j] = (fp[0] - fm[0]) / (2 * h)
            J[..., 1, j] = (fp[1] - fm[1]) / (2 * h)
        return J

    fR, fb = F(R, b)
    for _ in range(max_iter):
        if np.all(np.maximum(abs(fR), abs(fb)) < tol):
            break
        J = jac(R, b)
        det = J[..., 0, 0] * J[..., 1, 1] - J[..., 0, 1] * J[..., 1, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            dR = (J[..., 1, 1] * fR - J[..., 0, 1] * fb) / det
            db = (-J[..., 1, 0] * fR + J[..., 0, 0] * fb) / det
        done = np.maximum(abs(fR), abs(fb)) < tol
        dR = np.where(done | ~np.isfinite(dR), 0.0, dR)
        db = np.where(done | ~np.isfinite(db), 0.0, db)
        t = np.ones_like(R)
        for _h in range(30):
            bad = np.abs(R - t * dR) > 1.0
            if not bad.any():
                break
            t = np.where(bad, 0.5 * t, t)
        R, b = R - t * dR, b - t * db
        fR, fb = F(R, b)
    ok = (np.maximum(abs(fR), abs(fb)) < 1e-9) & (np.abs(R) <= 1.0)
    J = jac(R, b)
    ev = np.linalg.eigvals(np.where(np.isfinite(J), J, 0.0))
    R, b = np.where(ok, R, np.nan), np.where(ok, b, np.nan)
    ev = np.where(ok[..., None], ev, np.nan)
    return R, b, ev, ok


#: |largest real part| below this is 'marginal': the drift is flat there, which happens where the
#: classifier collapses to a constant (b -> -+infinity, every example on one side; the drift decays like
#: exp(-b^2)); above it the sign decides.  The eigenvalues of proper fixed points are O(eta_w) ~ 1e-2.
MARGINAL = 1e-7


def stability_code(ev_max: float) -> float:
    """1 stable (largest real part < -MARGINAL), 0 unstable (> MARGINAL), 2 marginal."""
    if ev_max < -MARGINAL:
        return 1.0
    if ev_max > MARGINAL:
        return 0.0
    return 2.0


def check_eps_test_option(opts: dict[str, Any]) -> None:
    """The option eps_test in the range of every command (:func:`simulate.core.grid.check_eps_test`)."""
    try:
        check_eps_test(opts["eps_test"])
    except ParameterError as err:
        raise ParameterError(f"--eps-test: {err}") from None


def check_ode_options(opts: dict[str, Any]) -> dict[str, Any]:
    """The options of an ODE engine (every family's): the solver's tolerances (simulate.core.grid) and eps_test."""
    check_tolerances(opts["rtol"], opts["atol"], prefix="--")
    check_eps_test_option(opts)
    return opts


def _guard() -> dict[str, Any]:
    """The wall-clock guard of a block's ODE solve (:func:`simulate.linear.ode.integrate_grid`): the limit as it is
    when the solve starts (:data:`simulate.core.resources.ODE_TIME_LIMIT`), a message that names the block."""
    return {"time_limit": resources.ODE_TIME_LIMIT, "what": "the ODEs of a block of {M} grid points",
            "advice": "try a larger --erf-scale, a smaller --eps or --alphas, or a smaller --chunk to find the point"}


class ODEEngine(SweepEngine):
    """Large-N ODEs on a block of points; outputs over alpha and at the end, baseline and fixed point."""

    name = "ode"
    default_chunk = 100
    defaults = {"alphas": [200.0], "eps_test": 1.0, "rtol": 1e-8, "atol": 1e-10, "baseline": True,
                "fixed_point": True, "throttle": 0.0}

    def check_options(self, options):
        return check_ode_options(super().check_options(options))

    def outputs(self, options):
        out = {q: ("alpha",) for q in ("R", "b", "E", "S")}
        if options["baseline"]:
            out.update({q: () for q in ("E_std", "S_std", "dE", "dS")})
        if options["fixed_point"]:
            out.update({q: () for q in ("R_fp", "b_fp", "ev_max", "ev_min", "stable", "dist_fp")})
        return out

    def coords(self, options):
        return {"alpha": sweep_alphas(options)}

    def compute(self, points, options):
        alphas = sweep_alphas(options)
        ps = [params_of(pt) for pt in points]
        n, na = len(ps), alphas.size
        out = {name: np.full((n,) + ((na,) if dims else ()), np.nan) for name, dims in self.outputs(options).items()}
        groups: dict[tuple, list[int]] = {}
        for i, p in enumerate(ps):
            groups.setdefault(tuple(getattr(p, s) for s in _STRINGS), []).append(i)
        grid = np.concatenate([[0.0], alphas])
        for (law, loss, nro, s), idx in groups.items():
            sub = [ps[i] for i in idx]
            arr = {k: np.array([getattr(p, k) for p in sub]) for k in _NUMERIC}
            kw = dict(eps_law=law, loss=loss, non_robust_only=nro, erf_scale=s)
            R, b = integrate_grid(grid, R0=np.array([p.R0 for p in sub]),
                                  b0=np.array([p.b0 for p in sub]), rtol=options["rtol"], atol=options["atol"],
                                  **_guard(), **kw, **arr)
            R, b = R[1:], b[1:]
            for j, (i, p) in enumerate(zip(idx, sub)):
                out["R"][i], out["b"][i] = R[:, j], b[:, j]
                out["E"][i] = test_error(R[:, j], b[:, j], p)
                out["S"][i] = adversarial_error(R[:, j], b[:, j], options["eps_test"], p)
            if options["baseline"]:
                std = dict(arr, eps=np.zeros(len(sub)))
                R0s, b0s = integrate_grid(np.array([0.0, alphas[-1]]), R0=np.array([p.R0 for p in sub]),
                                          b0=np.array([p.b0 for p in sub]), rtol=options["rtol"],
                                          atol=options["atol"], eps_law="fixed", loss=loss,
                                          non_robust_only=False, erf_scale=s, **_guard(), **std)
                for j, (i, p) in enumerate(zip(idx, sub)):
                    out["E_std"][i] = test_error(R0s[-1, j], b0s[-1, j], p)
                    out["S_std"][i] = adversarial_error(R0s[-1, j], b0s[-1, j], options["eps_test"], p)
                    out["dE"][i] = out["E"][i][-1] - out["E_std"][i]
                    out["dS"][i] = out["S"][i][-1] - out["S_std"][i]
            if options["fixed_point"]:
                Rf, bf, ev, ok = fixed_point_newton(R[-1], b[-1], **kw, **arr)
                re = np.sort(ev.real, axis=-1)
                for j, i in enumerate(idx):
                    out["R_fp"][i], out["b_fp"][i] = Rf[j], bf[j]
                    out["ev_min"][i], out["ev_max"][i] = re[j, 0], re[j, 1]
                    out["stable"][i] = stability_code(re[j, 1]) if ok[j] else np.nan
                    out["dist_fp"][i] = np.hypot(R[-1, j] - Rf[j], b[-1, j] - bf[j])
        if options["throttle"]:
            time.sleep(float(options["throttle"]))
        return out


# ---------------------------------------------------------------------------------------------------
# Monte Carlo engine
# ---------------------------------------------------------------------------------------------------
def point_seed(root_seed: int, params, size: int) -> int:
    """The seed of one grid point: SeedSequence([root, key of the parameters, size (N or d)]) -> one 32-bit
    word."""
    ss = np.random.SeedSequence([int(root_seed), int(params.key(), 16) % (1 << 63), int(size)])
    return int(ss.generate_state(1, np.uint32)[0])


def check_ints(opts: dict[str, Any], names) -> None:
    """Each option of ``names`` ((name, lowest value), ...) an integer >= its lowest value, or ParameterError."""
    for name, lo in names:
        v = opts[name]
        if isinstance(v, bool) or float(v) != int(v) or int(v) < lo:
            raise ParameterError(f"--{name} must be an integer >= {lo}, got {v!r}")


class ReplicaSweepEngine(SweepEngine):
    """A family's Monte Carlo at one point per task: the replica mean and standard error of each quantity over
    alpha, and the point's seed (:func:`point_seed`, from the root seed, the point's parameter key and its size),
    so the numbers at a point do not depend on the grid around it.

    A family names its size field (``size``: N or d, a sweepable field and an option), its ``quantities``
    ({name in the data set: quantity of the run's result}) and runs one point (:meth:`run`, a result with
    ``mean(q)`` and ``se(q)`` on [0] + alphas)."""

    size = "N"
    size_note = ""  # said after the size's range in its error message
    quantities: dict[str, str] = {}
    default_chunk = 1

    @property
    def extra_fields(self):
        return (self.size,)

    @abc.abstractmethod
    def run(self, params, size: int, alphas: np.ndarray, seed: int, options: dict[str, Any]): ...

    def check_options(self, options):
        opts = super().check_options(options)
        check_ints(opts, ((self.size, 2), ("replicas", 2), ("seed", 0), ("threads", 1)))
        return opts

    def check_point(self, point):
        self.params_of(point)
        n = point.get(self.size)
        if n is not None and (float(n) != int(n) or int(n) < 2):
            raise ParameterError(f"{self.size} must be an integer >= 2{self.size_note}, got {n}")

    def outputs(self, options):
        out = {}
        for name in self.quantities:
            out[name] = ("alpha",)
            out[name + "_se"] = ("alpha",)
        out["seed"] = ()
        return out

    def coords(self, options):
        return {"alpha": sweep_alphas(options)}

    def compute(self, points, options):
        alphas = sweep_alphas(options)
        out = {name: np.full((len(points),) + ((alphas.size,) if dims else ()), np.nan)
               for name, dims in self.outputs(options).items()}
        for i, pt in enumerate(points):
            p = self.params_of(pt)
            n = int(pt.get(self.size, options[self.size]))
            seed = point_seed(options["seed"], p, n)
            res = self.run(p, n, np.concatenate([[0.0], alphas]), seed, options)
            for name, q in self.quantities.items():
                out[name][i] = res.mean(q)[1:]
                out[name + "_se"][i] = res.se(q)[1:]
            out["seed"][i] = seed
        if options["throttle"]:
            time.sleep(float(options["throttle"]))
        return out


class MCEngine(ReplicaSweepEngine):
    """Monte Carlo (simulate.mc.run_mc) at one point per task: replica mean and standard error."""

    name = "mc"
    quantities = {q: q for q in ("R", "b", "E", "S")}
    defaults = {"alphas": [200.0], "eps_test": 1.0, "N": 1000, "replicas": 16, "seed": 0,
                "mc_engine": "full", "threads": 1, "throttle": 0.0}

    def check_options(self, options):
        opts = super().check_options(options)
        if opts["mc_engine"] not in ("full", "reduced"):
            raise ParameterError(f"--mc-engine must be full or reduced, got {opts['mc_engine']!r}")
        check_eps_test_option(opts)
        return opts

    def run(self, params, size, alphas, seed, options):
        from ..linear.mc import run_mc

        return run_mc(params, size, int(options["replicas"]), alphas, seed, engine=options["mc_engine"],
                      eps_test=options["eps_test"], progress=False, threads=options["threads"])


register_engine(ODEEngine())
register_engine(MCEngine())

# engines of the other model families register themselves on import
from ..multinorm import sweep_engine as _multinorm_sweep_engine  # noqa: E402,F401

# keep the field list importable for the CLI
PARAM_FIELDS = tuple(f.name for f in fields(Params))


# ---------------------------------------------------------------------------------------------------
# Committee machine engine
# ---------------------------------------------------------------------------------------------------
def _committee_sweep_params():
    """CommitteeParams whose as_dict() gives the initial arrays as JSON text (the data set's scalar coordinates)."""
    global _COMMITTEE_SWEEP_PARAMS
    if _COMMITTEE_SWEEP_PARAMS is None:
        import json

        from theory.committee import CommitteeParams

        class CommitteeSweepParams(CommitteeParams):
            def as_dict(self):
                d = super().as_dict()
                for k in ("R0", "Q0", "b0", "v0"):
                    d[k] = json.dumps(d[k])
                return d

        _COMMITTEE_SWEEP_PARAMS = CommitteeSweepParams
    return _COMMITTEE_SWEEP_PARAMS


_COMMITTEE_SWEEP_PARAMS = None


class CommitteeEngine(SweepEngine):
    """The committee machine's large-N ODEs (:func:`simulate.committee.integrate`) at one point per task.

    Grid axes: fields of :class:`theory.committee.CommitteeParams` (K, eps, eta_w, eta_b, eta_v, rho, prior, ...).
    Initial arrays (R0, Q0, b0, v0) that do not fit a point's K are replaced by the preset's defaults for that K.
    Outputs over alpha: E, S (at ``eps_test``; NaN without ``errors``) and Rmax = max_kd |R_kd|; per point: the
    first alpha of the grid where E < ``plateau_E`` (the end of the plateau; NaN if not reached), the number of
    right-hand sides, and with ``quad_error`` the estimated relative quadrature error of the drift at the end.
    """

    name = "committee"
    default_chunk = 1
    defaults = {"alphas": [200.0], "eps_test": 1.0, "rtol": 1e-6, "atol": 1e-8, "errors": True, "plateau_E": 0.4,
                "quad_error": False, "throttle": 0.0}

    @property
    def params_cls(self):
        return _committee_sweep_params()

    def check_options(self, options):
        opts = check_ode_options(super().check_options(options))
        if not 0 < float(opts["plateau_E"]) < 1:
            raise ParameterError(f"--plateau-E must lie in (0, 1), got {opts['plateau_E']}")
        return opts

    def params_of(self, point):
        import json

        cls = self.params_cls
        vals = {k: v for k, v in point.items() if k in set(cls.field_names())}
        vals = {k: (json.loads(v) if k in ("R0", "Q0", "b0", "v0") and isinstance(v, str) else v)
                for k, v in vals.items()}
        K = int(float(vals.get("K", 2)))
        fits = {"R0": lambda a: len(a) == K, "Q0": lambda a: len(a) == K, "b0": lambda a: len(a) == K,
                "v0": lambda a: len(a) == K}
        for name, ok in fits.items():
            if vals.get(name) is not None and not ok(vals[name]):
                vals[name] = None
        return cls(**vals)

    def outputs(self, options):
        return {"E": ("alpha",), "S": ("alpha",), "Rmax": ("alpha",), "alpha_plateau_end": (), "nfev": (),
                "quad_error": ()}

    def coords(self, options):
        return {"alpha": sweep_alphas(options)}

    def compute(self, points, options):
        from ..committee import integrate

        alphas = sweep_alphas(options)
        grid = np.concatenate([[0.0], alphas])
        out = {name: np.full((len(points),) + ((alphas.size,) if dims else ()), np.nan)
               for name, dims in self.outputs(options).items()}
        for i, pt in enumerate(points):
            p = self.params_of(pt)
            tr = integrate(p, grid, eps_test=float(options["eps_test"]), rtol=float(options["rtol"]),
                           atol=float(options["atol"]), error_alphas=alphas if options["errors"] else [],
                           quad_error_alphas=[alphas[-1]] if options["quad_error"] else ())
            R = tr.y[1:, [j for j, n in enumerate(tr.names) if n.startswith("R")]]
            out["E"][i], out["S"][i], out["Rmax"][i] = tr.E[1:], tr.S[1:], np.max(np.abs(R), axis=1)
            below = np.flatnonzero(tr.E[1:] < float(options["plateau_E"]))
            out["alpha_plateau_end"][i] = alphas[below[0]] if below.size else np.nan
            out["nfev"][i] = tr.solver["nfev"]
            out["quad_error"][i] = tr.solver["quad_error"][-1]
        if options["throttle"]:
            time.sleep(float(options["throttle"]))
        return out


register_engine(CommitteeEngine())
