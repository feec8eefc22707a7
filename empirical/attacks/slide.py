"""SLIDE, the sparse l_1 descent attack (Tramer & Boneh 2019).

Threat: S(x) = {x + r : |r|_1 <= eps} ∩ [0, 1]^d.

    e = sign(g) on the coordinates with |g_i| >= P_q(|g|) (the q-th percentile of the gradient magnitudes
        over the coordinates that can still move inside the box), 0 elsewhere;
    x^{k+1} = P_S(x^k + step_size e / |e|_1),

P_S the exact projection onto the l_1 ball ∩ box (:func:`empirical.threats.project_l1_box`, not the
off-by-one sorting approximation). Arguments: ``threat`` (an L1Ball); ``eps``; ``step_size`` (default
2.5 eps / steps); ``steps`` = 50; ``q`` percentile (default threat.q = 99); ``random_start`` = False
(the original starts at x); ``restarts`` = 1; ``loss`` = 'ce'.
"""

from __future__ import annotations

from ..threats import L1Ball
from .pgd import PGD

__all__ = ["SLIDE"]


class SLIDE(PGD):
    name = "slide"
    threats = (L1Ball,)

    def __init__(self, threat, eps=None, step_size=None, steps: int = 50, q: float | None = None,
                 random_start: bool = False, restarts: int = 1, loss: str = "ce"):
        if isinstance(threat, L1Ball) and q is not None:
            threat = threat.replace(q=float(q))
        super().__init__(threat, eps=eps, step_size=step_size, steps=steps, random_start=random_start,
                         restarts=restarts, loss=loss)
        self.q = self.threat.q
