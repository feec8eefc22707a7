"""Samplers, explicit perturbations and the command of the trade-off bounds (:mod:`theory.tradeoffs`).

- :mod:`simulate.tradeoffs.bounds`  ``python -m simulate.tradeoff lp|ring|bridge``.
"""
