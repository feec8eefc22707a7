"""Numerical layer: ODE integration (:mod:`simulate.ode`), Monte Carlo of the N-dimensional SGD,
samplers and command-line programs.  Depends on :mod:`theory`; numba is needed only by the Monte Carlo.
"""
