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

from ..sweep.engines import (ReplicaSweepEngine, SweepEngine, check_ints, point_seed,  # noqa: F401
                             register_engine, sweep_alphas)

__all__ = ["MultinormMCEngine", "MultinormTheoryEngine", "point_seed", "OUTPUT_KEYS"]

OUTPUT_KEYS = ("w0", "b", "ubar", "L1", "E", "S_inf", "S_1", "union")
#: the data set's name of a quantity: w0 over alpha is 'w0_alpha' (the coordinate 'w0' is its initial value)
NAMES = {q: ("w0_alpha" if q == "w0" else q) for q in OUTPUT_KEYS}


class MultinormMCEngine(ReplicaSweepEngine):
    """Monte Carlo of the multinorm family at one point per task."""

    name = "multinorm_mc"
    params_cls = MultinormParams
    size = "d"
    size_note = " for the Monte Carlo"
    quantities = {NAMES[q]: q for q in OUTPUT_KEYS}
    defaults = {"alphas": [50.0], "d": 1000, "replicas": 16, "seed": 0, "threads": 1, "throttle": 0.0}

    def run(self, params, size, alphas, seed, options):
        from .mc import run_multinorm_mc

        return run_multinorm_mc(params, size, int(options["replicas"]), alphas, seed, progress=False,
                                threads=int(options["threads"]))


class MultinormTheoryEngine(SweepEngine):
    """The large-d theory of the multinorm family (theory.multinorm.solve) at one point per task."""

    name = "multinorm"
    params_cls = MultinormParams
    extra_fields = ("d",)
    default_chunk = 1
    defaults = {"alphas": [50.0], "d": 0, "throttle": 0.0}

    def check_options(self, options):
        opts = super().check_options(options)
        check_ints(opts, (("d", 0),))
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
