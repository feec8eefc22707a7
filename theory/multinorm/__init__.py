"""The multinorm family: exact large-d dynamics of l_inf, l_1, l_2 and multi-perturbation (avg, max, SAT)
adversarial training of a linear erf classifier on the distribution of Tramer & Boneh (notation and model in
:mod:`theory.multinorm.params`; errors from the order parameters in :mod:`theory.multinorm.errors`).

Files: params.py (MultinormParams), errors.py (accuracies from the order parameters), drift.py (the averaged
drift and diffusion of the large-d limit), laws.py (finite volumes and quantile particles for the law of the weak
weights), solve.py (solve(): the solvers, the Gaussian reduction and the comparison variants), derivation.py
(sympy check of the one-step expansion).  Derivation: docs/multinorm.md.

Pure mathematics: numpy and scipy only (sympy in derivation.py); no randomness, no I/O.
"""

from .errors import ACCURACY_KEYS, ERROR_KEYS, State, accuracies, accuracy_at_shift, errors, shifts, state_from_weights
from .params import SCHEMES, MultinormParams, ParameterError, check_d

__all__ = ["MultinormParams", "SCHEMES", "ParameterError", "check_d", "State", "accuracies", "errors", "shifts",
           "accuracy_at_shift", "state_from_weights", "ERROR_KEYS", "ACCURACY_KEYS"]
from .solve import METHODS, solve, time_solve  # noqa: E402

__all__ += ["solve", "time_solve", "METHODS"]
