"""The multinorm family: exact large-d dynamics of l_inf, l_1, l_2 and multi-perturbation (avg, max, SAT)
adversarial training of a linear erf classifier on the distribution of Tramer & Boneh (notation and model in
:mod:`theory.multinorm.params`; errors from the order parameters in :mod:`theory.multinorm.errors`).

Pure mathematics: numpy and scipy only; no randomness, no I/O.
"""

from .errors import ACCURACY_KEYS, ERROR_KEYS, State, accuracies, accuracy_at_shift, errors, shifts, state_from_weights
from .params import SCHEMES, MultinormParams, ParameterError, check_d

__all__ = ["MultinormParams", "SCHEMES", "ParameterError", "check_d", "State", "accuracies", "errors", "shifts",
           "accuracy_at_shift", "state_from_weights", "ERROR_KEYS", "ACCURACY_KEYS"]
from .solve import METHODS, solve, time_solve  # noqa: E402

__all__ += ["solve", "time_solve", "METHODS"]
