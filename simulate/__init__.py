"""Numerical layer: ODE integration, Monte Carlo of the N-dimensional SGD, samplers and command-line programs.

Depends on :mod:`theory`; numba is needed only by the Monte Carlo kernels (:mod:`simulate.kernels`).  One folder
per model family (linear, committee, structured, tradeoffs), the sweeps, and a shared core (docs/architecture.md).
Former module paths (``simulate.ode``, ``simulate.mc``, ...) are aliases (:mod:`theory.core.aliases`).
"""

from theory.core import aliases as _aliases

_aliases.install("simulate")
