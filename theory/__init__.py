"""Exact large-N theory of online adversarial training in the Gaussian mixture, and trade-off bounds.

Pure mathematics: numpy, scipy and sympy only; no randomness, no I/O.  See :mod:`theory.params` for the
glossary of symbols.
"""

from .errors import (adversarial_error, bayes_error, best_linear_adversarial_error, best_linear_error,
                     robustness_curve, test_error)
from .ode import FixedPoint, drift, fixed_points, jacobian, loss_derivative, rhs
from .params import EPS_LAWS, LOSSES, ParameterError, Params, eps_ppf, eps_quadrature

__all__ = [
    "Params", "ParameterError", "EPS_LAWS", "LOSSES", "eps_quadrature", "eps_ppf",
    "test_error", "adversarial_error", "robustness_curve", "bayes_error", "best_linear_error",
    "best_linear_adversarial_error", "drift", "rhs", "jacobian", "fixed_points", "FixedPoint",
    "loss_derivative",
]
