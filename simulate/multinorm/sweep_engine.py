"""The multinorm family's engines of ``python -m simulate.sweep`` (registered on import by
:mod:`simulate.sweep_engines`):

``multinorm_mc``  the Monte Carlo (:func:`simulate.multinorm.mc.run_multinorm_mc`) at one point per task:
                  replica mean and standard error of w0 (named w0_alpha: the coordinate w0 is the initial value),
                  b, ubar, L1 and the errors E, S_inf, S_1, union over alpha.  Each point's seed comes from the root seed and the point's parameter key and d.
``multinorm``     the large-d theory (:func:`theory.multinorm.solve`) at d (an integer, or 0 for d = inf).

    python -m simulate.sweep --engine multinorm_mc --grid scheme=avg,max,sat --grid d=500,1000 \\
        --alphas 10,50 --replicas 8 --out runs/schemes.nc

The grid's axes are fields of :class:`theory.multinorm.MultinormParams` (scheme, a, p0, e, eps1, eps2, eta_w,
eta_b, w0, loss) or d.
"""

from __future__ import annotations

import math
import time

import numpy as np

from theory.multinorm import MultinormParams, ParameterError, check_d

from ..sweep.engines import SweepEngine, sweep_alphas, register_engine

__all__ = ["MultinormMCEngine", "MultinormTheoryEngine", "point_seed", "OUTPUT_KEYS"]

OUTPUT_KEYS = ("w0", "b", "ubar", "L1", "E", "S_inf", "S_1", "union")
#: the data set's name of a quantity: w0 over alpha is 'w0_alpha' (the coordinate 'w0' is its initial value)
NAMES = {q: ("w0_alpha" if q == "w0" else q) for q in OUTPUT_KEYS}


def point_seed(root_seed: int, params: MultinormParams, d: int) -> int:
    """The seed of one grid point: SeedSequence([root, key of the parameters, d]) -> one 32-bit word."""
    ss = np.random.SeedSequence([int(root_seed), int(params.key(), 16) % (1 << 63), int(d)])
    return int(ss.generate_state(1, np.uint32)[0])


def _check_ints(opts, names):
    for name, lo in names:
        v = opts[name]
        if isinstance(v, bool) or float(v) != int(v) or int(v) < lo:
            raise ParameterError(f"--{name} must be an integer >= {lo}, got {v!r}")


class MultinormMCEngine(SweepEngine):
    """Monte Carlo of the multinorm family at one point per task."""

    name = "multinorm_mc"
    params_cls = MultinormParams
    extra_fields = ("d",)
    default_chunk = 1
    defaults = {"alphas": [50.0], "d": 1000, "replicas": 16, "seed": 0, "threads": 1, "throttle": 0.0}

    def check_options(self, options):
        opts = super().check_options(options)
        _check_ints(opts, (("d", 2), ("replicas", 2), ("seed", 0), ("threads", 1)))
        return opts

    def check_point(self, point):
        self.params_of(point)
        d = point.get("d")
        if d is not None and (float(d) != int(d) or int(d) < 2):
            raise ParameterError(f"d must be an integer >= 2 for the Monte Carlo, got {d}")

    def outputs(self, options):
        out = {}
        for q in OUTPUT_KEYS:
            out[NAMES[q]] = ("alpha",)
            out[NAMES[q] + "_se"] = ("alpha",)
        out["seed"] = ()
        return out

    def coords(self, options):
        return {"alpha": sweep_alphas(options)}

    def compute(self, points, options):
        from .mc import run_multinorm_mc

        alphas = sweep_alphas(options)
        out = {name: np.full((len(points),) + ((alphas.size,) if dims else ()), np.nan)
               for name, dims in self.outputs(options).items()}
        for i, pt in enumerate(points):
            p = self.params_of(pt)
            d = int(pt.get("d", options["d"]))
            seed = point_seed(options["seed"], p, d)
            res = run_multinorm_mc(p, d, int(options["replicas"]), np.concatenate([[0.0], alphas]), seed,
                                   progress=False, threads=int(options["threads"]))
            for q in OUTPUT_KEYS:
                out[NAMES[q]][i] = res.mean(q)[1:]
                out[NAMES[q] + "_se"][i] = res.se(q)[1:]
            out["seed"][i] = seed
        if options["throttle"]:
            time.sleep(float(options["throttle"]))
        return out


class MultinormTheoryEngine(SweepEngine):
    """The large-d theory of the multinorm family (theory.multinorm.solve) at one point per task."""

    name = "multinorm"
    params_cls = MultinormParams
    extra_fields = ("d",)
    default_chunk = 1
    defaults = {"alphas": [50.0], "d": 0, "throttle": 0.0}

    def check_options(self, options):
        opts = super().check_options(options)
        _check_ints(opts, (("d", 0),))
        return opts

    def outputs(self, options):
        return {NAMES[q]: ("alpha",) for q in OUTPUT_KEYS}

    def coords(self, options):
        return {"alpha": sweep_alphas(options)}

    def compute(self, points, options):
        try:
            from theory.multinorm import solve
        except ImportError:
            raise ParameterError("engine multinorm: theory.multinorm.solve is not available in this checkout; "
                                 "use --engine multinorm_mc") from None
        alphas = sweep_alphas(options)
        out = {NAMES[q]: np.full((len(points), alphas.size), np.nan) for q in OUTPUT_KEYS}
        for i, pt in enumerate(points):
            d = int(pt.get("d", options["d"]))
            sol = solve(self.params_of(pt), np.concatenate([[0.0], alphas]), math.inf if d == 0 else check_d(d))
            for q in OUTPUT_KEYS:
                out[NAMES[q]][i] = np.asarray(sol[q], dtype=float)[1:]
        if options["throttle"]:
            time.sleep(float(options["throttle"]))
        return out


register_engine(MultinormMCEngine())
register_engine(MultinormTheoryEngine())
