"""Exact large-N theory of online adversarial training in the Gaussian mixture, and trade-off bounds.

Pure mathematics: numpy, scipy and sympy only; no randomness, no I/O.  One folder per model family, one
shared core (docs/architecture.md):

- :mod:`theory.core`       what every family uses (Gaussian averages);
- :mod:`theory.linear`     the linear classifier sign(w.xi - b) (parameters, ODE, errors, derivation, control);
- :mod:`theory.committee`  the two-layer soft committee machine;
- :mod:`theory.structured` the linear classifier on structured data (any class means and covariances);
- :mod:`theory.tradeoffs`  static bounds between perturbation types (l_p, rotation-translation, bridge).

The linear model's names are re-exported here; see :mod:`theory.linear.params` for the glossary of symbols.
Former module paths (``theory.params``, ``theory.ode``, ...) are aliases (:mod:`theory.core.aliases`).
"""

from .core import aliases as _aliases

_aliases.install("theory")

from .linear.errors import (adversarial_error, bayes_error, best_linear_adversarial_error, best_linear_error,
                     robustness_curve, test_error)
from .linear.ode import FixedPoint, drift, fixed_points, jacobian, loss_derivative, rhs
from .linear.params import EPS_LAWS, LOSSES, ParameterError, Params, eps_ppf, eps_quadrature

__all__ = [
    "Params", "ParameterError", "EPS_LAWS", "LOSSES", "eps_quadrature", "eps_ppf",
    "test_error", "adversarial_error", "robustness_curve", "bayes_error", "best_linear_error",
    "best_linear_adversarial_error", "drift", "rhs", "jacobian", "fixed_points", "FixedPoint",
    "loss_derivative",
]
