"""Parameters of online adversarial training in the two-cluster Gaussian mixture.

Glossary (notation of M. Straat, "Modelling adversarial training"):

=============  ==========================================================  ===============
symbol         meaning                                                     domain
=============  ==========================================================  ===============
N              input dimension                                             N -> infinity
B              unit vector joining the cluster centres, |B| = 1
tau            label / cluster, +1 with prior p, -1 otherwise              {+1, -1}
rho            distance between the centres  +-(rho/2) B                   rho > 0
p  (prior)     probability of the cluster tau = +1                        0 < p < 1
v1, v2         variance per coordinate of cluster +1 / -1                 v > 0
w              weight vector, renormalised to |w| = 1 after every step
b              threshold; the classifier is sigma = erf((w.xi - b)/s)
s (erf_scale)  scale of the erf: 1 (default) or sqrt(2) (sigma = erf(x/sqrt 2))
eps            l2 budget of the training perturbation xi - tau*eps*w      eps >= 0
eps_law        law of the per-example budget: eps * U with E[U] = 1       see EPS_LAWS
eta_w, eta_b   learning rates; steps eta_w/N on w and eta_b/N on b        > 0
R              overlap w.B                                                 [-1, 1]
alpha          learning time, alpha = (number of steps)/N                  alpha >= 0
=============  ==========================================================  ===============

Every later part of the project (ODE, Monte Carlo, CLIs, figures) takes a :class:`Params`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from ..core.params import FrozenParams, ParameterError, check_finite, check_range, stable_key  # noqa: F401

__all__ = ["Params", "ParameterError", "EPS_LAWS", "LOSSES", "eps_quadrature", "eps_ppf", "FIELD_HELP",
           "stable_key", "RANGES", "SNR_MAX", "check_range"]


#: Laws of the per-example budget.  Each is a scale family eps * U with E[U] = 1, so ``eps`` is
#: always the mean budget:
#:   fixed        U = 1                              (the talk's adversarial training)
#:   uniform      U ~ Uniform[0, 2]
#:   exponential  U ~ Exp(1)
#:   halfnormal   U = |Z| sqrt(pi/2),  Z ~ N(0, 1)
EPS_LAWS = ("fixed", "uniform", "exponential", "halfnormal")

#: Losses of the output sigma = erf(x/s) against the label tau.
#:   quadratic      (sigma - tau)^2 / 2             (the talk; Gaussian averages in closed form)
#:   cross_entropy  -log((1 + tau*sigma)/2)          (averages by quadrature)
LOSSES = ("quadratic", "cross_entropy")

FIELD_HELP = {
    "rho": "distance between the cluster centres +-(rho/2)B (rho > 0)",
    "prior": "prior p of the cluster tau=+1 (0 < p < 1)",
    "v1": "variance per coordinate of the cluster tau=+1 (v1 > 0)",
    "v2": "variance per coordinate of the cluster tau=-1 (v2 > 0)",
    "eta_w": "learning rate of w; the step is eta_w/N (eta_w > 0)",
    "eta_b": "learning rate of b; the step is eta_b/N (eta_b >= 0)",
    "eps": "mean l2 budget of the training perturbation xi - tau*eps*w (eps >= 0; 0 = standard training)",
    "eps_law": "law of the per-example budget, eps*U with E[U]=1: " + ", ".join(EPS_LAWS),
    "non_robust_only": "update only on examples that the perturbation makes misclassified",
    "loss": "training loss: " + ", ".join(LOSSES),
    "erf_scale": "s in sigma = erf((w.xi - b)/s); 1 (default) or sqrt(2) = 1.4142135623730951 (s > 0)",
    "R0": "initial overlap R(0) = w(0).B (-1 <= R0 <= 1)",
    "b0": "initial threshold b(0)",
}


#: Valid range of every real field: (low, high, which ends are open, the reason for the bounds). The physics allows
#: more; these bounds are where double precision, the solvers and the simulation still resolve the model.
RANGES: dict[str, tuple[float, float, str, str]] = {
    "rho": (0.0, 100.0, "(]", "two distinct centres; beyond 100 every error underflows to 0"),
    "prior": (0.0, 1.0, "()", "a probability; both clusters present"),
    "v1": (1e-4, 1e4, "[]", "a variance; outside, rho/sqrt(v) and eta_w^2 v leave the resolved range"),
    "v2": (1e-4, 1e4, "[]", "a variance; outside, rho/sqrt(v) and eta_w^2 v leave the resolved range"),
    "eta_w": (0.0, 10.0, "(]", "steps eta_w/N; beyond 10 the eta_w^2 noise term makes the dynamics trivial "
                               "and the ODE stiff"),
    "eta_b": (0.0, 10.0, "[]", "0 freezes b; beyond 10 the ODE is stiff"),
    "eps": (0.0, 100.0, "[]", "a budget; beyond 100 noise sd every example is flipped"),
    "erf_scale": (1e-3, 1e3, "[]", "the erf's width; outside, sigma is a step or linear to double precision"),
    "R0": (-1.0, 1.0, "[]", "an overlap of unit vectors"),
    "b0": (-100.0, 100.0, "[]", "a threshold beyond 100 noise sd classifies everything as one cluster"),
}
#: rho / sqrt(min(v1, v2)) at most this: Phi(-SNR_MAX/2) ~ 1e-350 is below the smallest double
SNR_MAX = 80.0


@dataclass(frozen=True, kw_only=True)
class Params(FrozenParams):
    """Model and training parameters (defaults: scenario 1 of the talk, adversarial training).

    Frozen and validated on construction; ``replace(**changes)`` gives a validated copy and ``key()``
    a stable hash of every field, for file names and caches.
    """

    rho: float = 2.0
    prior: float = 0.5
    v1: float = 1.0
    v2: float = 1.0
    eta_w: float = 0.04
    eta_b: float = 0.2
    eps: float = 1.0
    eps_law: str = "fixed"
    non_robust_only: bool = False
    loss: str = "quadratic"
    erf_scale: float = 1.0
    R0: float = 0.0
    b0: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.type in ("float", float):
                object.__setattr__(self, f.name, check_finite(f.name, getattr(self, f.name)))
        for name, (lo, hi, ends, why) in RANGES.items():
            check_range(name, getattr(self, name), lo, hi, ends, why)
        snr = self.rho / math.sqrt(min(self.v1, self.v2))
        if snr > SNR_MAX:
            raise ParameterError(f"rho must be at most {SNR_MAX:g} sqrt(min(v1, v2)) = "
                                 f"{SNR_MAX * math.sqrt(min(self.v1, self.v2)):.4g} here (beyond, the Gaussian "
                                 f"tails the errors and drifts need underflow double precision), got {self.rho}")
        if self.eps_law not in EPS_LAWS:
            raise ParameterError(f"eps_law must be one of {', '.join(EPS_LAWS)}, got {self.eps_law!r}")
        if self.loss not in LOSSES:
            raise ParameterError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if not isinstance(self.non_robust_only, (bool, np.bool_)):
            raise ParameterError(f"non_robust_only must be a bool, got {self.non_robust_only!r}")
        object.__setattr__(self, "non_robust_only", bool(self.non_robust_only))

    # -- conveniences (replace, as_dict, key, field_names: theory.core.params.FrozenParams) ----------
    @property
    def p(self) -> float:
        """The prior, in the talk's notation."""
        return self.prior

    @property
    def cluster_weights(self) -> tuple[tuple[int, float, float], ...]:
        """((tau, P(tau), v_tau), ...) for tau = +1, -1."""
        return ((1, self.prior, self.v1), (-1, 1.0 - self.prior, self.v2))

    def swapped(self) -> "Params":
        """The same problem with the clusters' roles exchanged (p <-> 1-p, v1 <-> v2, b0 -> -b0)."""
        return self.replace(prior=1.0 - self.prior, v1=self.v2, v2=self.v1, b0=-self.b0)


# --------------------------------------------------------------------------------------------
# Per-example budget laws: quadrature nodes (theory) and inverse CDF (for sampling in simulate/).
# --------------------------------------------------------------------------------------------
def eps_quadrature(eps_law: str, eps: float, n: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (summing to 1) such that E[f(eps_example)] ~= sum_k w_k f(node_k).

    fixed: one node.  uniform: Gauss-Legendre on [0, 2 eps].  exponential: Gauss-Laguerre.
    halfnormal: composite Gauss-Legendre in |z| on [0, 12].
    """
    from scipy.special import roots_laguerre, roots_legendre

    if eps_law == "fixed" or eps == 0.0:
        return np.array([float(eps)]), np.array([1.0])
    if eps_law == "uniform":
        z, w = roots_legendre(n)
        return eps * (z + 1.0), w / 2.0
    if eps_law == "exponential":
        t, w = roots_laguerre(n)
        return eps * t, w
    if eps_law == "halfnormal":
        # E[f(c|Z|)] = int_0^12 f(c z) 2 phi(z) dz (mass beyond 12 sd ~ 4e-33), by Gauss-Legendre on
        # 4 panels: the integrand is analytic, so the rule converges exponentially.
        z, w = roots_legendre(n)
        panels = 4
        edges = np.linspace(0.0, 12.0, panels + 1)
        half = 0.5 * (edges[1] - edges[0])
        zz = np.concatenate([edges[k] + half * (z + 1.0) for k in range(panels)])
        ww = np.concatenate([half * w for _ in range(panels)]) * 2.0 * np.exp(-0.5 * zz**2) / math.sqrt(2 * math.pi)
        ww = ww / ww.sum()
        return eps * math.sqrt(math.pi / 2.0) * zz, ww
    raise ParameterError(f"eps_law must be one of {', '.join(EPS_LAWS)}, got {eps_law!r}")


def eps_ppf(eps_law: str, eps: float, u):
    """Inverse CDF of the per-example budget, for sampling by inversion of u ~ Uniform(0, 1)."""
    from scipy.special import ndtri

    u = np.asarray(u, dtype=float)
    if eps_law == "fixed":
        return np.full_like(u, eps)
    if eps_law == "uniform":
        return 2.0 * eps * u
    if eps_law == "exponential":
        return -eps * np.log1p(-u)
    if eps_law == "halfnormal":
        return eps * math.sqrt(math.pi / 2.0) * ndtri(0.5 + 0.5 * u)
    raise ParameterError(f"eps_law must be one of {', '.join(EPS_LAWS)}, got {eps_law!r}")
