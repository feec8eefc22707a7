"""Theory against Monte Carlo for the multinorm family, with the project's ODE-vs-MC statistics
(:class:`simulate.compare.Comparison`, :func:`simulate.compare.sidak_quantile`):

    |mean - theory| <= q se + c/d + solver error      at every alpha > 0 and every compared quantity,

q the two-sided normal quantile Sidak-corrected for the number m of comparisons (so that a correct theory fails
with probability <= familywise when the replica means are normal), c/d the finite-size allowance (the theory
keeps every deterministic term of order 1/sqrt(d); what is left is O(1/d)), and the solver's stated error.
Several runs (schemes, d, parameter sets) compared in one family share one q: pass ``m`` = their total.
"""

from __future__ import annotations

import numpy as np

from theory.multinorm import ParameterError

from ..core.compare import Comparison, sidak_quantile
from .mc import MultinormMCResult

__all__ = ["compare", "n_comparisons", "QUANTITIES"]

#: the quantities compared by default
QUANTITIES = ("w0", "b", "ubar", "L1", "E", "S_inf", "S_1", "union")


def n_comparisons(res: MultinormMCResult, quantities=QUANTITIES) -> int:
    """The number of comparisons of one run: its alphas > 0 times the quantities."""
    return int(np.sum(res.alpha > 0)) * len(tuple(quantities))


def compare(theory: dict, res: MultinormMCResult, *, bias_c: dict[str, float], familywise: float,
            quantities=QUANTITIES, m: int | None = None, solver_error: float = 0.0) -> Comparison:
    """Compare the replica means of ``res`` with the theory's trajectory ``theory`` (a dict of
    :func:`theory.multinorm.solve`, on the alphas of ``res``) at every alpha > 0.  ``bias_c[q]`` is the
    constant c of the allowance c/d; ``m`` the size of the family of comparisons (default: this run's)."""
    alpha_th = np.asarray(theory["alphas"], dtype=float)
    if alpha_th.shape != res.alpha.shape or not np.allclose(alpha_th, res.alpha, rtol=0, atol=1e-12):
        raise ParameterError("the theory and the Monte Carlo must share one alpha grid")
    keep = res.alpha > 0
    quantities = tuple(quantities)
    m = n_comparisons(res, quantities) if m is None else int(m)
    return Comparison(alpha=res.alpha[keep],
                      ode={n: np.asarray(theory[n], dtype=float)[keep] for n in quantities},
                      mean={n: res.mean(n)[keep] for n in quantities},
                      se={n: res.se(n)[keep] for n in quantities},
                      allowance={n: bias_c[n] / res.d + solver_error for n in quantities},
                      q=sidak_quantile(m, familywise), m=m, quantities=quantities)
