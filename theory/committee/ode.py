"""Large-N theory of online (adversarial) training of a two-layer soft committee machine.

Glossary (the linear model's symbols of :mod:`theory.params`, extended):

=============  ==========================================================  ===============
symbol         meaning                                                     domain
=============  ==========================================================  ===============
C, D           clusters of the mixture; dimension of span{B_1..B_D}         preset
mu_c           cluster mean sum_d m_cd B_d, B_d orthonormal
p_c, v_c       cluster prior and isotropic variance per coordinate          > 0
tau_c          label of cluster c                                          {+1, -1}
K              hidden units                                                 K >= 1
w_k            first-layer weights, |w_k| = 1 (renormalised every step)
b_k            thresholds, lambda_k = w_k.xi - b_k
v_k            second-layer weights, sigma(xi) = sum_k v_k erf(lambda_k)
Q_kl           w_k.w_l (Q_kk = 1)                                          Gram matrix
R_kd           w_k.B_d                                                     |R_kd| <= 1
eps            l2 budget of the PGD attack                                 eps >= 0
s, a           PGD steps and step size a*eps (s = 1, a = 1: FGSM-l2)        s >= 1, a > 0
alpha          learning time, steps/N
=============  ==========================================================  ===============

Presets (labels tau, prior p = P(tau = +1), variance v1 for tau = +1 and v2 for tau = -1):
  talk  C = 2, D = 1: means +-(rho/2) B_1, labels +-1 (the linear model's data);
  xor   C = 4, D = 2: +-(rho/2) B_1 labelled +1, +-(rho/2) B_2 labelled -1, each label's prior split
        evenly between its two clusters (priors 1/4 at p = 1/2); no linear classifier beats chance.

Attack (training and evaluation): l2 PGD in input space, delta_0 = 0,
    delta_{t+1} = Proj_{|delta| <= eps}(delta_t + a eps g_t/|g_t|),  g_t = grad_xi L(xi + delta_t, tau),
L = (sigma - tau)^2/2.  g_t = (sigma - tau) sum_k v_k erf'(lambda_k) w_k lies in span{w_k}, so with
delta = sum_k c_k w_k the perturbed fields are lambda + Q c and the whole attack is a map of
(lambda, Q, v, tau) (:func:`attack_fields`).

The ODEs (derivation: docs/committee.md and :mod:`theory.committee_derivation`), with
e_k = (sigma~ - tau) v_k erf'(lambda~_k), u_k = w_k.xi~ = lambda~_k + b_k, y_d = B_d.xi~ and <.> the
average over the mixture and the fields (the attack inside the average):

    dR_kd/dalpha = -eta_w <e_k y_d> + eta_w R_kd <e_k u_k> - (eta_w^2/2) R_kd <v_c e_k^2>
    dQ_kl/dalpha = -eta_w <e_k u_l + e_l u_k> + eta_w Q_kl <e_k u_k + e_l u_l>
                   + eta_w^2 <v_c e_k e_l> - (eta_w^2/2) Q_kl <v_c (e_k^2 + e_l^2)>
    db_k/dalpha  =  eta_b <e_k>,        dv_k/dalpha = -eta_v <(sigma~ - tau) erf(lambda~_k)>.

Given the cluster, lambda ~ N(R m_c - b, v_c Q) and E[B_d.xi | lambda] = m_cd + (R^T Q^+ (h - R m_c))_d
(Gaussian conditioning, h = lambda + b), so every average is a K-dimensional Gaussian average over standard
normal coordinates zeta mapped by a square root of Q (:func:`field_grid`), by a rule of :func:`drift_rule`:
a Gauss-Hermite product grid ("gh:n") or randomised quasi-Monte Carlo ("rqmc:m:r", r fixed scramblings of a
Sobol set, whose spread is the standard error of the average).  :func:`drift_error` returns the drift with an
estimate of its quadrature error (the spread of the scramblings, or the change against a Gauss-Hermite rule of
higher order).  For K = 1, v = 1 and s = 1 the attack is xi - tau eps w and the ODEs are those of
:mod:`theory.ode`.

Pure mathematics: numpy and scipy, no randomness, no I/O.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
from scipy.optimize import root
from scipy.special import erf, ndtr, ndtri, roots_hermite

from ..linear.params import FIELD_HELP as _LINEAR_HELP
from ..core.numerics import central_jacobian
from ..core.params import FrozenParams
from ..linear.params import ParameterError, Params, check_range

__all__ = ["CommitteeParams", "Mixture", "State", "PRESETS", "COMMITTEE_FIELD_HELP", "mixture", "field_grid",
           "attack_fields", "drift", "rhs", "pack", "unpack", "errors", "test_error", "adversarial_error",
           "jacobian", "fixed_point", "quadrature_nodes", "qmc_nodes", "rqmc_nodes", "drift_nodes", "GRID_NODES",
           "QMC_LOG2", "ERROR_NODES", "ERROR_QMC_LOG2", "Rule", "drift_rule", "default_rule", "drift_error",
           "drift_from_averages", "averages", "quadrature_error", "rule_for", "may_jump"]

PRESETS = ("talk", "xor")
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_SHARED = ("rho", "prior", "v1", "v2", "eta_w", "eta_b", "eps")  # validated by theory.params.Params

#: Default rules of the drift's K-dimensional Gaussian average (:func:`default_rule`), without and with the
#: attack.  Without it the integrand is analytic and a Gauss-Hermite product rule converges exponentially.  With
#: it the attack direction g/|g| switches between units where their erf'(lambda~_k) ~ exp(-lambda~_k^2) cross, a
#: transition whose width shrinks like 1/|lambda| in the tails, and where sigma - tau changes sign (sum |v_k| > 1)
#: the direction flips: the integrand jumps.  Product rules then converge algebraically and for K >= 3 the
#: average is randomised quasi-Monte Carlo: 8 fixed scramblings (seeds RQMC_SEED + j) of 2^m Sobol points with
#: their mirror images, whose spread gives the standard error.  Measured errors: docs/committee.md (Quadrature).
DEFAULT_RULES = {
    1: ("gh:96", "gh:96"),
    2: ("gh:64", "gh:128"),  # with a jump (sum |v| > 1 or eta_v > 0): DEFAULT_RULE_JUMP
    3: ("rqmc:10:8", "rqmc:10:8"),
    4: ("rqmc:10:8", "rqmc:10:8"),
}
DEFAULT_RULE_LARGE_K = ("rqmc:10:8", "rqmc:10:8")  # K >= 5
#: with the attack and sum_k |v_k| > 1 (or a learning second layer) sigma - tau can vanish and the integrand jumps
#: where it does (the attack direction flips).  A fixed rule then gives a drift with small jumps as nodes cross
#: the surface (thousands of solver steps) and a product rule's change against a finer one misjudges its error
#: (measured at K = 2: 2e-3 off with a stated 4e-4).  For FGSM the default is then the line rule (line_nodes:
#: the jump located on each line and integrated piecewise), whose drift is continuous in the state; for PGD at
#: K = 2 the randomised rule, whose standard error stays honest.
DEFAULT_RULE_JUMP = {2: "line:32", 3: "line:10", 4: "line:6"}  # K >= 5: the randomised rule
DEFAULT_RULE_JUMP_PGD = "rqmc:11:8"
RQMC_SEED = 20261204
DETERMINISTIC_ERROR_FACTOR = 2.0  # drift_error of a deterministic rule: this times the change against a finer one
#: Gauss-Hermite nodes per dimension of the former defaults (kept for the tests of the product rule).
GRID_NODES = {1: 96, 2: 28}
QMC_LOG2 = {3: 13, 4: 13}
QMC_LOG2_DEFAULT = 14  # K >= 5
#: Outer rule of the error integrals (K - 1 dimensions; the last one is done exactly on a line): Gauss-Hermite
#: with these nodes for K = 2, for K >= 3 quasi-Monte Carlo with 2^ERROR_QMC_LOG2 points (and mirrors).  The
#: conditional misclassified mass has kinks in the outer coordinates (where the number of roots on the line
#: changes), where a product rule converges slowly: at K = 4 xor states, 10 nodes per dimension missed E by
#: up to 4e-3 and 16 nodes by 3e-3, 2^10 QMC points by below 1e-3 (against 4e6 samples of the fields, SE 2.5e-4).
ERROR_NODES = {1: 1, 2: 48}
ERROR_QMC_LOG2 = 10
_PRUNE = 1e-14  # product-grid nodes with weight below this (relative to the total) are dropped

#: Valid ranges of the committee's own fields (the shared ones are theory.params.RANGES'), with the reasons.
COMMITTEE_INT_RANGES = {
    "K": (8, "the drift's Gaussian averages are K-dimensional; their accuracy is measured up to K = 4 and the "
             "cost grows like K^2 per node beyond"),
    "pgd_steps": (1000, "each PGD step is a pass over the quadrature nodes"),
}
COMMITTEE_RANGES = {
    "eta_v": (0.0, 10.0, "[]", "0 fixes the second layer; beyond 10 the ODE is stiff, as for eta_b"),
    "pgd_step": (0.0, 100.0, "(]", "in units of eps; beyond 100 every step ends on the sphere |delta| = eps"),
}

COMMITTEE_FIELD_HELP = {
    **{k: _LINEAR_HELP[k] for k in _SHARED},
    "preset": "data model: " + ", ".join(PRESETS) + " (see theory.committee)",
    "K": "number of hidden units (K >= 1)",
    "v1": "variance per coordinate of the clusters labelled tau=+1 (v1 > 0)",
    "v2": "variance per coordinate of the clusters labelled tau=-1 (v2 > 0)",
    "prior": "P(tau=+1), split evenly over the clusters of each label (0 < prior < 1)",
    "eps": "l2 budget of the PGD training attack (eps >= 0; 0 = standard training)",
    "eta_v": "learning rate of the second layer v (eta_v >= 0; 0 keeps v fixed)",
    "pgd_steps": "PGD steps s of the training attack (integer >= 1; 1 with pgd_step 1 is FGSM-l2)",
    "pgd_step": "PGD step size a, in units of eps (a > 0)",
    "R0": "initial overlaps R_kd = w_k.B_d, K x D, rows separated by ';' [preset default]",
    "Q0": "initial Gram matrix Q_kl = w_k.w_l, K x K, unit diagonal [identity]",
    "b0": "initial thresholds b_k, K values [0]",
    "v0": "second-layer weights v_k, K values [talk: 1/K each; xor: +1/K, then -1/K for the second half]",
}


class Mixture(NamedTuple):
    """The Gaussian mixture of a preset: C clusters in span{B_1..B_D}."""

    means: np.ndarray  # (C, D): m_cd
    priors: np.ndarray  # (C,)
    variances: np.ndarray  # (C,)
    labels: np.ndarray  # (C,) of +-1


class State(NamedTuple):
    """Order parameters: Q (K, K), R (K, D), b (K,), v (K,)."""

    Q: np.ndarray
    R: np.ndarray
    b: np.ndarray
    v: np.ndarray


def _matrix(name: str, value, shape: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a real array of shape {shape}, got {value!r}") from None
    if arr.shape != shape:
        if arr.size == int(np.prod(shape)) and len(shape) == 1:
            arr = arr.reshape(shape)
        else:
            raise ParameterError(f"{name} must have shape {shape} (K = {shape[0]}), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{name} must be finite, got {value!r}")
    return arr


def _tuple(arr: np.ndarray):
    return tuple(_tuple(a) for a in arr) if arr.ndim > 1 else tuple(float(x) for x in arr)


@dataclass(frozen=True, kw_only=True)
class CommitteeParams(FrozenParams):
    """Data model, network and training of the committee machine (defaults: the talk's data, K = 2, FGSM).

    The data-model and learning-rate fields are those of :class:`theory.params.Params` and are validated
    by it (:meth:`linear`).  Initial conditions R0 (K x D), Q0 (K x K), b0, v0 (K) default by preset and are
    stored as tuples, so the object is hashable and ``key()`` is stable.  Q0 and R0 must be realisable by
    unit vectors: the Gram matrix [[Q0, R0], [R0^T, I_D]] of (w_1..w_K, B_1..B_D) is positive semidefinite
    with unit diagonal.
    """

    preset: str = dataclasses.field(default="talk", metadata={"choices": PRESETS})
    K: int = 2
    rho: float = 2.0
    prior: float = 0.5
    v1: float = 1.0
    v2: float = 1.0
    eta_w: float = 0.04
    eta_b: float = 0.2
    eta_v: float = 0.0
    eps: float = 1.0
    pgd_steps: int = 1
    pgd_step: float = 1.0
    R0: Any = None
    Q0: Any = None
    b0: Any = None
    v0: Any = None

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ParameterError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        for name in ("K", "pgd_steps"):
            value = getattr(self, name)
            hi, why = COMMITTEE_INT_RANGES[name]
            try:
                ok = not isinstance(value, (bool, np.bool_)) and float(value).is_integer() and 1 <= value <= hi
            except (TypeError, ValueError, OverflowError):
                ok = False
            if not ok:
                raise ParameterError(f"{name} must be an integer in [1, {hi}] ({why}), got {value!r}")
            object.__setattr__(self, name, int(value))
        for name, (lo, hi, ends, why) in COMMITTEE_RANGES.items():
            object.__setattr__(self, name, check_range(name, getattr(self, name), lo, hi, ends, why))
        lin = self.linear()  # validates rho, prior, v1, v2, eta_w, eta_b, eps with the linear model's rules
        for name in _SHARED:
            object.__setattr__(self, name, getattr(lin, name))
        K, D = self.K, self.D
        R0 = _matrix("R0", _default_R0(self.preset, K) if self.R0 is None else self.R0, (K, D))
        Q0 = _matrix("Q0", np.eye(K) if self.Q0 is None else self.Q0, (K, K))
        b0 = _matrix("b0", np.zeros(K) if self.b0 is None else self.b0, (K,))
        v0 = _matrix("v0", _default_v0(self.preset, K) if self.v0 is None else self.v0, (K,))
        if np.max(np.abs(Q0 - Q0.T)) > 1e-12:
            raise ParameterError("Q0 must be symmetric (a Gram matrix w_k.w_l)")
        if np.max(np.abs(np.diag(Q0) - 1.0)) > 1e-12:
            raise ParameterError("Q0 must have a unit diagonal (|w_k| = 1)")
        if np.max(np.abs(R0)) > 1.0:
            raise ParameterError("R0 entries must lie in [-1, 1] (overlaps of unit vectors)")
        gram = np.block([[Q0, R0], [R0.T, np.eye(D)]])
        if np.linalg.eigvalsh(gram).min() < -1e-10:
            raise ParameterError("Q0 and R0 are not the Gram matrix of unit vectors w_k and orthonormal B_d: "
                                 "[[Q0, R0], [R0^T, I]] must be positive semidefinite")
        for name, arr in (("R0", R0), ("Q0", Q0), ("b0", b0), ("v0", v0)):
            object.__setattr__(self, name, _tuple(arr))

    # -- conveniences -----------------------------------------------------------------------------
    @property
    def D(self) -> int:
        return 1 if self.preset == "talk" else 2

    def linear(self) -> Params:
        """The linear model's :class:`Params` with the shared fields (for K = 1 it is the same model)."""
        return Params(**{k: getattr(self, k) for k in _SHARED})

    def replace(self, **changes: Any) -> "CommitteeParams":
        """A validated copy with some fields changed (changing K or the preset resets defaulted arrays)."""
        if ("K" in changes and changes["K"] != self.K) or ("preset" in changes and changes["preset"] != self.preset):
            for name in ("R0", "Q0", "b0", "v0"):
                changes.setdefault(name, None)
        return super().replace(**changes)

    def initial_state(self) -> State:
        return State(np.array(self.Q0), np.array(self.R0).reshape(self.K, self.D), np.array(self.b0),
                     np.array(self.v0))

    def mixture(self) -> Mixture:
        return mixture(self.preset, self.rho, self.prior, self.v1, self.v2)


def _default_R0(preset: str, K: int) -> np.ndarray:
    if preset == "talk":
        return np.zeros((K, 1))
    # small overlaps in generic directions (no exact symmetry between the units), |R0_k| = 0.1
    theta = 2.0 * math.pi * (np.arange(K) + 0.3) / K + 0.4
    return 0.1 * np.stack([np.cos(theta), np.sin(theta)], axis=1)


def _default_v0(preset: str, K: int) -> np.ndarray:
    """sum_k |v_k| = 1, so |sigma| < 1 and sigma - tau never vanishes: the attack direction is smooth."""
    if preset == "talk":
        return np.full(K, 1.0 / K)
    half = (K + 1) // 2
    return np.where(np.arange(K) < half, 1.0, -1.0) / K


def mixture(preset: str, rho: float, prior: float, v1: float, v2: float) -> Mixture:
    """Cluster means (C, D), priors, variances and labels of a preset."""
    if preset == "talk":
        return Mixture(np.array([[0.5 * rho], [-0.5 * rho]]), np.array([prior, 1.0 - prior]), np.array([v1, v2]),
                       np.array([1.0, -1.0]))
    if preset == "xor":
        h = 0.5 * rho
        return Mixture(np.array([[h, 0.0], [-h, 0.0], [0.0, h], [0.0, -h]]),
                       np.array([prior / 2, prior / 2, (1 - prior) / 2, (1 - prior) / 2]),
                       np.array([v1, v1, v2, v2]), np.array([1.0, 1.0, -1.0, -1.0]))
    raise ParameterError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")


# ---------------------------------------------------------------------------------------------------
# State vector: the off-diagonal Q_kl (k < l), R (row-major), b, v
# ---------------------------------------------------------------------------------------------------
def pack(state: State) -> np.ndarray:
    Q, R, b, v = state
    iu = np.triu_indices(Q.shape[0], 1)
    return np.concatenate([Q[iu], np.ravel(R), b, v])


def unpack(y, K: int, D: int) -> State:
    y = np.asarray(y, dtype=float)
    iu = np.triu_indices(K, 1)
    n = len(iu[0])
    Q = np.eye(K)
    Q[iu] = y[:n]
    Q[(iu[1], iu[0])] = y[:n]
    R = y[n:n + K * D].reshape(K, D)
    b = y[n + K * D:n + K * D + K]
    v = y[n + K * D + K:n + K * D + 2 * K]
    return State(Q, R, b, v)


def state_names(K: int, D: int) -> list[str]:
    """Names of the entries of the state vector: Q[k,l], R[k,d], b[k], v[k] (1-based)."""
    names = [f"Q[{k + 1},{l + 1}]" for k, l in zip(*np.triu_indices(K, 1))]
    names += [f"R[{k + 1},{d + 1}]" for k in range(K) for d in range(D)]
    names += [f"b[{k + 1}]" for k in range(K)] + [f"v[{k + 1}]" for k in range(K)]
    return names


# ---------------------------------------------------------------------------------------------------
# Gaussian averages over the K local fields
# ---------------------------------------------------------------------------------------------------
@lru_cache(maxsize=32)
def quadrature_nodes(K: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal product Gauss-Hermite grid in K dimensions: nodes (M, K) and weights (M,) summing
    to 1; nodes with relative weight below 1e-14 are dropped (their total weight is below 1e-12)."""
    t, w = roots_hermite(n)
    t, w = t * math.sqrt(2.0), w / math.sqrt(math.pi)
    grids = np.meshgrid(*([t] * K), indexing="ij")
    wgrids = np.meshgrid(*([w] * K), indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], axis=1)
    weights = np.prod(np.stack([g.ravel() for g in wgrids], axis=1), axis=1)
    keep = weights > _PRUNE * weights.max()
    nodes, weights = nodes[keep], weights[keep]
    return np.ascontiguousarray(nodes), weights / weights.sum()


@lru_cache(maxsize=32)
def qmc_nodes(K: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic quasi-Monte Carlo rule for E[f(zeta)], zeta ~ N(0, I_K): the first 2^m points of the
    unscrambled Sobol sequence (scipy.stats.qmc) without the origin, mapped by the normal quantile, and their
    mirror images; 2 (2^m - 1) nodes (M, K), equal weights summing to 1."""
    from scipy.stats import qmc  # imported here: scipy.stats takes a second to import

    u = qmc.Sobol(K, scramble=False).random_base2(m)[1:]
    z = ndtri(u)
    nodes = np.concatenate([z, -z])
    return np.ascontiguousarray(nodes), np.full(len(nodes), 1.0 / len(nodes))


@lru_cache(maxsize=32)
def rqmc_nodes(K: int, m: int, r: int, seed: int = RQMC_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Randomised quasi-Monte Carlo for E[f(zeta)], zeta ~ N(0, I_K): r blocks, block j the 2^m points of a Sobol
    set scrambled with seed ``seed + j`` (scipy.stats.qmc, Owen scrambling), mapped by the normal quantile, and
    their mirror images.  Each block is an unbiased estimate; nodes (r 2^(m+1), K) in block order, weights 1/M."""
    from scipy.stats import qmc

    blocks = []
    for j in range(r):
        z = ndtri(qmc.Sobol(K, scramble=True, seed=seed + j).random_base2(m))
        blocks.append(np.concatenate([z, -z]))
    nodes = np.concatenate(blocks)
    return np.ascontiguousarray(nodes), np.full(len(nodes), 1.0 / len(nodes))


class Rule(NamedTuple):
    """A rule for E[f(zeta)], zeta ~ N(0, I_K): nodes (M, K) and weights (M,) in ``blocks`` consecutive blocks of
    equal size, each block's weights summing to 1/blocks.  With blocks > 1 every block is an independent
    randomised estimate (their spread is the rule's standard error)."""

    name: str
    nodes: np.ndarray
    weights: np.ndarray
    blocks: int


def may_jump(p: CommitteeParams) -> bool:
    """Whether the drift's integrand can jump: an attack, and sigma - tau can vanish (sum |v_k| > 1, or v learns)."""
    return p.eps > 0 and (p.eta_v > 0 or float(np.sum(np.abs(p.v0))) > 1.0 + 1e-12)


def default_rule(K: int, eps: float, jump: bool = False, steps: int = 1) -> str:
    """The name of the default rule of the drift: DEFAULT_RULES (the second entry when the attack is on); where the
    integrand can jump, the line rule DEFAULT_RULE_JUMP for FGSM (K <= 4) and DEFAULT_RULE_JUMP_PGD for K = 2 with
    PGD (the line rule splits only at the clean sign change, not at those of the later steps)."""
    if jump and eps > 0:
        if steps == 1 and K in DEFAULT_RULE_JUMP:
            return DEFAULT_RULE_JUMP[K]
        if K == 2:
            return DEFAULT_RULE_JUMP_PGD
    return DEFAULT_RULES.get(K, DEFAULT_RULE_LARGE_K)[1 if eps > 0 else 0]


def rule_for(p: CommitteeParams, rule: int | str | None = None) -> "Rule":
    """:func:`drift_rule` for the parameters (the default depends on K, the attack and :func:`may_jump`)."""
    return drift_rule(p.K, default_rule(p.K, p.eps, may_jump(p), p.pgd_steps) if rule is None else rule, p.eps)


def drift_rule(K: int, rule: int | str | None = None, eps: float = 1.0) -> Rule:
    """Parse a rule: ``None`` the default (:func:`default_rule`); an integer n or ``"gh:n"`` the product
    Gauss-Hermite grid with n nodes per dimension; ``"qmc:m"`` the deterministic Sobol rule with 2^m points and
    mirrors; ``"rqmc:m:r"`` r scrambled Sobol blocks of 2^m points and mirrors (:func:`rqmc_nodes`)."""
    if rule is None:
        rule = default_rule(K, eps)
    if not isinstance(rule, str):
        if isinstance(rule, bool) or int(rule) != rule or int(rule) < 1:
            raise ParameterError(f"quadrature rule must be an integer >= 1, 'gh:N', 'qmc:M' or 'rqmc:M:R', got {rule!r}")
        rule = f"gh:{int(rule)}"
    kind, *nums = rule.split(":")
    sizes = {"gh": (1, 1, 4096), "qmc": (1, 1, 24), "rqmc": (2, 1, 24), "line": (1, 1, 512)}
    if kind not in sizes or len(nums) != sizes[kind][0] or not all(x.isdigit() and int(x) >= 1 for x in nums) \
            or int(nums[0]) > sizes[kind][2] or (kind == "rqmc" and not 2 <= int(nums[1]) <= 64):
        raise ParameterError(f"quadrature rule must be 'gh:N' (1 <= N <= 4096), 'qmc:M' or 'rqmc:M:R' (1 <= M <= 24, "
                             f"2 <= R <= 64) or 'line:N' (1 <= N <= 512), got {rule!r}")
    if kind == "line":  # the outer Gauss-Hermite grid over K - 1 coordinates; the lines are built per state
        if K == 1:
            return Rule(rule, np.zeros((1, 0)), np.ones(1), 1)
        return Rule(rule, *quadrature_nodes(K - 1, int(nums[0])), 1)
    if kind == "gh":
        return Rule(rule, *quadrature_nodes(K, int(nums[0])), 1)
    if kind == "qmc":
        return Rule(rule, *qmc_nodes(K, int(nums[0])), 1)
    return Rule(rule, *rqmc_nodes(K, int(nums[0]), int(nums[1])), int(nums[1]))


def drift_nodes(K: int, n: int | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of :func:`drift_rule` (the default: the rule with the attack)."""
    r = drift_rule(K, n)
    return r.nodes, r.weights


def sqrt_gram(Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(L, P) with L L^T = Q and P = L^+ (so that Q^+ L = P^T).

    L is the Cholesky factor while Q is comfortably positive definite: a smooth function of Q, so the
    quadrature is a smooth function of the state and the adaptive integrator keeps long steps (a square root
    from eigenvectors rotates abruptly near degenerate eigenvalues, and the product grid is not rotation
    invariant).  For a (nearly) singular Q (parallel units) L = U Lambda^(1/2) from the eigenvalues, directions
    with eigenvalue below 1e-12 carrying no variance.
    """
    Q = 0.5 * (Q + Q.T)
    try:
        L = np.linalg.cholesky(Q)
        if np.min(np.diag(L)) > 1e-4:
            return L, np.linalg.inv(L)
    except np.linalg.LinAlgError:
        pass
    lam, U = np.linalg.eigh(Q)
    keep = lam > 1e-12
    sq = np.where(keep, np.sqrt(np.clip(lam, 0.0, None)), 0.0)
    inv = np.where(keep, 1.0 / np.where(keep, sq, 1.0), 0.0)
    return U * sq, (U * inv).T


def field_grid(state: State, mix: Mixture, nodes: np.ndarray):
    """Per cluster c and node zeta: the fields lambda (C, M, K) and E[B.xi | lambda] (C, M, D).

    lambda = R m_c - b + sqrt(v_c) L zeta with L L^T = Q; E[B_d.xi | lambda] = m_cd + sqrt(v_c) (R^T Q^+ L zeta)_d
    and Q^+ L = (L^+)^T.
    """
    Q, R, b, _ = state
    L, P = sqrt_gram(Q)
    sd = np.sqrt(mix.variances)[:, None, None]
    lam = (mix.means @ R.T)[:, None, :] - b + sd * (nodes @ L.T)[None]
    hbar = mix.means[:, None, :] + sd * (nodes @ (P @ R))[None]
    return lam, hbar


def _output(lam, v):
    return np.sum(v * erf(lam), axis=-1)


def attack_fields(lam, tau, Q, v, eps: float, steps: int = 1, step: float = 1.0):
    """The PGD-l2 attack on the fields: coefficients c (delta = sum_k c_k w_k) and perturbed fields lambda + Q c.

    ``lam`` (..., K), ``tau`` broadcastable to lam[..., 0].  Each step: g = (sigma - tau) v erf'(lambda~)
    (the input gradient's coefficients on w_k), c += step*eps g/sqrt(g^T Q g), then c is projected onto
    c^T Q c <= eps^2.  A vanishing gradient leaves c unchanged.
    """
    lam = np.asarray(lam, dtype=float)
    c = np.zeros_like(lam)
    if eps == 0.0:
        return c, lam
    tau = np.asarray(tau, dtype=float)[..., None]
    lt = lam
    for _ in range(steps):
        sig = _output(lt, v)[..., None]
        g = (sig - tau) * v * _TWO_OVER_SQRT_PI * np.exp(-lt * lt)
        gQ = g @ Q
        gn = np.sqrt(np.maximum(np.sum(gQ * g, axis=-1, keepdims=True), 0.0))
        c = c + step * eps * np.divide(g, gn, out=np.zeros_like(g), where=gn > 0)
        cQ = c @ Q
        cn = np.sqrt(np.maximum(np.sum(cQ * c, axis=-1, keepdims=True), 0.0))
        c = c * np.minimum(1.0, np.divide(eps, cn, out=np.ones_like(cn), where=cn > 0))
        lt = lam + c @ Q
    return c, lt


#: the line rule's inner rule: Gauss-Legendre with LINE_GL nodes on LINE_PANELS equal panels of [-LINE_T, LINE_T]
#: (normal mass outside 1e-15), each panel split at the sign changes of sigma - tau found on LINE_GRID points
#: and located by LINE_NEWTON safeguarded Newton steps from the secant point
LINE_T, LINE_PANELS, LINE_GL, LINE_GRID, LINE_NEWTON = 8.0, 12, 4, 65, 6


def line_geometry(state: State, p: CommitteeParams, rule: Rule, c: int):
    """The lines of cluster c: feet zb (Mo, K) (the outer nodes in the complement of u), direction u (K,) along
    grad sigma at the cluster's mean field (in the coordinates zeta), and lambda = mean + zeta @ Lz."""
    mix = p.mixture()
    Q, R, b, v = state
    K = p.K
    L, _ = sqrt_gram(Q)
    sd = math.sqrt(mix.variances[c])
    mean = mix.means[c] @ R.T - b
    grad = sd * L.T @ (v * np.exp(-mean * mean))
    if not np.linalg.norm(grad) > 1e-12:
        grad = np.eye(K)[0]
    basis = np.linalg.qr(np.column_stack([grad, np.eye(K)]))[0][:, :K]
    return (np.ascontiguousarray(rule.nodes @ basis[:, 1:].T), np.ascontiguousarray(basis[:, 0]),
            np.ascontiguousarray(mean), np.ascontiguousarray(L.T * sd), float(mix.labels[c]))


def line_nodes(state: State, p: CommitteeParams, rule: Rule, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes zeta (M, K) and weights of the line rule for cluster c: lines through the outer Gauss-Hermite nodes
    along the direction u of grad sigma at the cluster's mean field (in the coordinates zeta), on each line a
    piecewise Gauss-Legendre rule split at the points where sigma(lambda) - tau changes sign.  There the attack
    direction g/|g|, g ~ (sigma - tau) v erf'(lambda), flips and the integrand jumps; splitting there makes the
    quadrature exact up to the smooth parts' error and the drift continuous in the state.  (For PGD with s > 1
    the later steps' sign changes are not split.)"""
    zb, zd, mean, Lz, tau = line_geometry(state, p, rule, c)
    return line_nodes_on(zb, zd, mean, Lz, tau, state.v, rule.weights)


def line_nodes_on(zb, zd, mean, Lz, tau, v, outer_w):
    """:func:`line_nodes` from the geometry of :func:`line_geometry` and the outer weights."""
    from scipy.special import roots_legendre

    K = zd.size

    def g(z):
        return _output(mean + z @ Lz, v) - tau

    tg = np.linspace(-LINE_T, LINE_T, LINE_GRID)
    F = g(zb[:, None, :] + tg[None, :, None] * zd)
    s_pos = F > 0
    mi, ji = np.nonzero(s_pos[:, :-1] != s_pos[:, 1:])
    lo, hi = tg[ji].copy(), tg[ji + 1].copy()
    # each bracket: the secant point, then Newton steps kept inside the bracket (d sigma/dt along the line is
    # sum_k v_k erf'(lambda_k) (sd L zd)_k)
    r = lo + (hi - lo) * F[mi, ji] / (F[mi, ji] - F[mi, ji + 1])
    dl = zd @ Lz
    for _ in range(LINE_NEWTON):
        lam = mean + (zb[mi] + r[:, None] * zd) @ Lz
        f = _output(lam, v) - tau
        df = (v * _TWO_OVER_SQRT_PI * np.exp(-lam * lam)) @ dl
        step = np.divide(f, df, out=np.zeros_like(f), where=df != 0)
        r = np.clip(r - step, lo, hi)
    lo = hi = r
    Mo = len(zb)
    cnt = np.bincount(mi, minlength=Mo)
    nr = int(cnt.max()) if cnt.size else 0
    edges = np.linspace(-LINE_T, LINE_T, LINE_PANELS + 1)
    pts = np.full((Mo, LINE_PANELS + 1 + nr), np.inf)
    pts[:, :LINE_PANELS + 1] = edges
    if nr:
        order = np.argsort(mi, kind="stable")
        start = np.concatenate([[0], np.cumsum(cnt)[:-1]])
        pos = np.arange(len(mi)) - start[mi[order]]
        pts[mi[order], LINE_PANELS + 1 + pos] = 0.5 * (lo + hi)[order]
    pts.sort(axis=1)
    a, bnd = pts[:, :-1], pts[:, 1:]
    ok = np.isfinite(bnd) & (bnd > a)
    a, bnd = np.where(ok, a, 0.0), np.where(ok, bnd, 0.0)
    xg, wg = roots_legendre(LINE_GL)
    half = 0.5 * (bnd - a)
    t = (0.5 * (bnd + a))[..., None] + half[..., None] * xg  # (Mo, I, n)
    w = (half[..., None] * wg) * np.exp(-0.5 * t * t) / math.sqrt(2 * math.pi) * outer_w[:, None, None]
    w = w * ok[..., None]
    z = zb[:, None, None, :] + t[..., None] * zd
    keep = w.ravel() > 0
    return np.ascontiguousarray(z.reshape(-1, K)[keep]), w.ravel()[keep]


def rule_parts(state: State, p: CommitteeParams, rule: Rule, nodes_fn=None):
    """(mixture, rule) pairs whose averages add up to the drift's: the whole mixture with the rule, or for a
    line rule one cluster at a time with its own nodes (:func:`line_nodes`; ``nodes_fn`` another implementation
    of :func:`line_nodes_on`, e.g. a compiled one)."""
    mix = p.mixture()
    if not rule.name.startswith("line:"):
        return [(mix, rule)]
    parts = []
    for c in range(len(mix.priors)):
        z, w = line_nodes(state, p, rule, c) if nodes_fn is None else nodes_fn(*line_geometry(state, p, rule, c),
                                                                                  state.v, rule.weights)
        sub = Mixture(*(np.ascontiguousarray(a[c:c + 1]) for a in mix))
        parts.append((sub, Rule(rule.name, z, w, 1)))
    return parts


def averages(state: State, p: CommitteeParams, rule: Rule, attack_in_average: bool = True):
    """The data averages of the drift per block of the rule: <e_k y_d> (B, K, D), <e_k u_l> (B, K, K),
    <v_c e_k e_l> (B, K, K), <e_k> (B, K), <(sigma~-tau) erf(lambda~_k)> (B, K), each block's weights scaled to 1."""
    parts = [_averages_on(state, p, mix, r, attack_in_average) for mix, r in rule_parts(state, p, rule)]
    return tuple(sum(a[i] for a in parts) for i in range(5))


def _averages_on(state: State, p: CommitteeParams, mix: Mixture, rule: Rule, attack_in_average: bool):
    Q, R, b, v = state
    B = rule.blocks
    lam, hbar = field_grid(state, mix, rule.nodes)
    tau = mix.labels[:, None]
    eps = p.eps if attack_in_average else 0.0
    c, lt = attack_fields(lam, tau, Q, v, eps, p.pgd_steps, p.pgd_step)
    sig = _output(lt, v)
    err = sig - tau  # (C, M)
    e = err[..., None] * v * _TWO_OVER_SQRT_PI * np.exp(-lt * lt)  # (C, M, K)
    u = lt + b
    y = hbar + c @ R
    C, M, K = e.shape
    W = (mix.priors[:, None] * rule.weights[None] * B).reshape(C, B, M // B)  # (C, B, M/B)
    e, u, y, err = (a.reshape(C, B, M // B, -1) for a in (e, u, y, err[..., None]))
    We = W[..., None] * e
    A = np.einsum("cbmk,cbmd->bkd", We, y)
    EU = np.einsum("cbmk,cbml->bkl", We, u)
    EE = np.einsum("cbmk,cbml->bkl", We * mix.variances[:, None, None, None], e)
    Eb = We.sum(axis=(0, 2))
    Ev = np.einsum("cbm,cbmk->bk", W * err[..., 0], erf(lt).reshape(C, B, M // B, K))
    return A, EU, EE, Eb, Ev


def drift_from_averages(state: State, p: CommitteeParams, A, EU, EE, Eb, Ev, *, renormalise: bool = True) -> State:
    """(dQ, dR, db, dv)/dalpha from the averages of one block (the ODEs of the module docstring)."""
    Q, R, b, v = state
    eta = p.eta_w
    d, ee = np.diag(EU), np.diag(EE)
    dR = -eta * A
    dQ = -eta * (EU + EU.T) + eta**2 * EE
    if renormalise:
        dR = dR + (eta * d - 0.5 * eta**2 * ee)[:, None] * R
        dQ = dQ + Q * (eta * (d[:, None] + d[None, :]) - 0.5 * eta**2 * (ee[:, None] + ee[None, :]))
    np.fill_diagonal(dQ, 0.0)  # Q_kk = 1 is not a state variable
    return State(dQ, dR, p.eta_b * Eb, -p.eta_v * Ev)


def _block_drifts(state: State, p: CommitteeParams, rule: Rule, renormalise: bool, attack_in_average: bool,
                  backend=None) -> np.ndarray:
    """Packed drift of every block of the rule, (B, n); ``backend`` computes :func:`averages` (another
    implementation of the same function, e.g. a compiled kernel)."""
    avg = (backend or averages)(state, p, rule, attack_in_average)
    return np.array([pack(drift_from_averages(state, p, *(a[j] for a in avg), renormalise=renormalise))
                     for j in range(rule.blocks)])


def drift(state: State, p: CommitteeParams, n: int | str | None = None, *, renormalise: bool = True,
          attack_in_average: bool = True, backend=None) -> State:
    """(dQ, dR, db, dv)/dalpha at ``state`` (the ODEs of the module docstring), the averages by the rule ``n``
    (:func:`drift_rule`; the mean of its blocks).

    ``renormalise=False`` drops the terms from the renormalisation |w_k| = 1 and ``attack_in_average=False``
    averages over the clean fields: both are deliberately wrong variants for the tests.
    """
    rule = rule_for(p, n)
    avg = (backend or averages)(state, p, rule, attack_in_average)
    # the drift is linear in the averages: the mean over the blocks first
    return drift_from_averages(state, p, *(a.mean(axis=0) for a in avg), renormalise=renormalise)


def unpack_drift(y, K: int, D: int) -> State:
    """:func:`unpack` for a drift (the diagonal of dQ is 0)."""
    st = unpack(y, K, D)
    dQ = st.Q.copy()
    np.fill_diagonal(dQ, 0.0)
    return State(dQ, st.R, st.b, st.v)


def drift_error(state: State, p: CommitteeParams, n: int | str | None = None, *, backend=None,
                **variant) -> tuple[np.ndarray, np.ndarray]:
    """The packed drift by the rule ``n`` and an estimate of its quadrature error per entry.

    Randomised rules ("rqmc:m:r"): the standard error of the mean of the r blocks (std/sqrt(r); the error over
    it follows Student's t with r - 1 degrees of freedom).  Deterministic rules ("gh:n", "qmc:m"): twice the change
    against the rule of higher order ("gh:(n + n/2)", "qmc:(m+1)"), which bounds the error of the coarser rule
    while the rules converge at least like n^-1.7 (error(n) = change/(1 - (2/3)^p) <= 2 change).
    """
    rule = rule_for(p, n)
    ren, att = variant.get("renormalise", True), variant.get("attack_in_average", True)
    blocks = _block_drifts(state, p, rule, ren, att, backend)
    y = blocks.mean(axis=0)
    if rule.blocks > 1:
        return y, blocks.std(axis=0, ddof=1) / math.sqrt(rule.blocks)
    kind, num = rule.name.split(":")
    finer = f"{kind}:{int(num) + max(2, int(num) // 2)}" if kind in ("gh", "line") else f"qmc:{int(num) + 1}"
    y2 = _block_drifts(state, p, drift_rule(p.K, finer, p.eps), ren, att, backend).mean(axis=0)
    return y, DETERMINISTIC_ERROR_FACTOR * np.abs(y - y2)


def quadrature_error(state: State, p: CommitteeParams, n: int | str | None = None, *, backend=None) -> float:
    """max |error estimate| / max |drift| of :func:`drift_error` (0 for a vanishing drift)."""
    y, err = drift_error(state, p, n, backend=backend)
    scale = float(np.max(np.abs(y)))
    return float(np.max(err)) / scale if scale > 0 else 0.0


def rhs(y, p: CommitteeParams, n: int | str | None = None, **variant) -> np.ndarray:
    """The drift on the packed state vector (:func:`pack`)."""
    return pack(drift(unpack(y, p.K, p.D), p, n, **variant))


# ---------------------------------------------------------------------------------------------------
# Errors: E = P(tau sigma(xi) <= 0), S = the same after the attack
# ---------------------------------------------------------------------------------------------------
def errors(state: State, p: CommitteeParams, eps_test: float, steps: int | None = None, step: float | None = None,
           n_outer: int | str | None = None, n_line: int = 64, bisections: int = 44) -> tuple[float, float]:
    """(E, S(eps_test)) of the state, the attack with ``steps`` steps of size ``step``*eps_test (default: the
    training attack's s and a).

    Misclassification means tau sigma <= 0.  Given the cluster, the fields are lambda = mean + sqrt(v_c) L zeta;
    the integral over zeta is split into an outer rule over K - 1 coordinates (``n_outer``: as in
    :func:`drift_nodes`; default ``ERROR_NODES`` / ``ERROR_QMC_LOG2``) and, for each
    outer node, an exact 1-D Gaussian probability along the remaining coordinate t: the sign changes of
    tau sigma~(t) are bracketed on a grid of ``n_line`` points in [-9, 9], located by bisection, and the
    normal masses of the misclassified intervals are summed (a bracket holding two roots is missed: the
    grid spacing 0.29 is far below the scale of sigma~).  Exact for K = 1 up to the bisection tolerance.
    """
    steps = p.pgd_steps if steps is None else int(steps)
    step = p.pgd_step if step is None else float(step)
    mix = p.mixture()
    Q, R, b, v = state
    K = p.K
    L, _ = sqrt_gram(Q)
    if K > 1:
        if n_outer is not None:
            nodes, weights = drift_nodes(K - 1, n_outer)
        elif K in ERROR_NODES:
            nodes, weights = quadrature_nodes(K - 1, ERROR_NODES[K])
        else:
            nodes, weights = qmc_nodes(K - 1, ERROR_QMC_LOG2)
    else:
        nodes, weights = np.zeros((1, 0)), np.ones(1)
    t = np.linspace(-9.0, 9.0, n_line)
    Phi_t = ndtr(t)
    out = []
    for eps in (0.0, eps_test):
        total = 0.0
        for c in range(len(mix.priors)):
            sd = math.sqrt(mix.variances[c])
            tau = mix.labels[c]
            mean = mix.means[c] @ R.T - b
            # the line runs along the gradient of tau sigma at the mean field, in the standard-normal
            # coordinates zeta (lambda = mean + sd L zeta), so that it crosses the decision boundary
            # transversally; the outer grid covers the orthogonal complement
            grad = sd * L.T @ (v * np.exp(-mean * mean))
            if not np.linalg.norm(grad) > 1e-12:
                grad = L.T @ np.ones(K)
            if not np.linalg.norm(grad) > 1e-12:
                grad = np.eye(K)[0]
            basis = np.linalg.qr(np.column_stack([grad, np.eye(K)]))[0][:, :K]  # first column along grad
            line = L @ basis[:, 0]
            base = mean + sd * (nodes @ (L @ basis[:, 1:]).T)  # (M, K)

            def f(bb, tt):  # tau sigma~ at the fields bb + sqrt(v_c) tt line
                _, lt = attack_fields(bb + sd * tt[..., None] * line, tau, Q, v, eps, steps, step)
                return tau * _output(lt, v)

            F = f(base[:, None, :], t[None, :])  # (M, n_line)
            bad = F <= 0.0
            # masses of whole cells whose ends are both misclassified, plus the tails
            cell = np.diff(Phi_t)
            mass = np.sum(cell * (bad[:, :-1] & bad[:, 1:]), axis=1)
            mass += Phi_t[0] * bad[:, 0] + Phi_t[0] * bad[:, -1]
            m_idx, j_idx = np.nonzero(bad[:, :-1] != bad[:, 1:])
            if m_idx.size:
                lo, hi = t[j_idx].copy(), t[j_idx + 1].copy()
                flo = bad[m_idx, j_idx]
                for _ in range(bisections):
                    mid = 0.5 * (lo + hi)
                    bm = f(base[m_idx], mid) <= 0.0
                    same = bm == flo
                    lo = np.where(same, mid, lo)
                    hi = np.where(same, hi, mid)
                r = 0.5 * (lo + hi)
                Pr = ndtr(r)
                part = np.where(flo, Pr - Phi_t[j_idx], Phi_t[j_idx + 1] - Pr)
                np.add.at(mass, m_idx, part)
            total += mix.priors[c] * float(np.sum(weights * mass))
        out.append(total)
    return out[0], out[1]


def test_error(state: State, p: CommitteeParams, **kw) -> float:
    """E = P(sign sigma(xi) != tau)."""
    return errors(state, p, 0.0, **kw)[0]


test_error.__test__ = False  # not a pytest test


def adversarial_error(state: State, p: CommitteeParams, eps_test: float, **kw) -> float:
    """S(eps_test) = P(sign sigma(xi + delta) != tau), delta from the PGD attack."""
    return errors(state, p, eps_test, **kw)[1]


# ---------------------------------------------------------------------------------------------------
# Fixed points
# ---------------------------------------------------------------------------------------------------
def jacobian(y, p: CommitteeParams, h: float = 1e-6) -> np.ndarray:
    """Jacobian of :func:`rhs` by central differences."""
    return central_jacobian(lambda v: rhs(v, p), y, h)


@dataclass(frozen=True)
class CommitteeFixedPoint:
    y: np.ndarray
    eigenvalues: tuple[complex, ...]
    residual: float

    @property
    def stable(self) -> bool:
        return all(ev.real < 0 for ev in self.eigenvalues)


def fixed_point(y0, p: CommitteeParams, tol: float = 1e-10) -> CommitteeFixedPoint | None:
    """A fixed point of the ODEs near ``y0`` (MINPACK hybr), with the eigenvalues of its Jacobian, or None.

    Frozen coordinates (eta_b = 0 or eta_v = 0) are held fixed: the search runs over the moving ones."""
    y0 = np.asarray(y0, dtype=float)
    K, D = p.K, p.D
    nQ = K * (K - 1) // 2
    move = np.ones(y0.size, bool)
    if p.eta_b == 0:
        move[nQ + K * D:nQ + K * D + K] = False
    if p.eta_v == 0:
        move[nQ + K * D + K:] = False

    def F(z):
        y = y0.copy()
        y[move] = z
        return rhs(y, p)[move]

    sol = root(F, y0[move], method="hybr", tol=tol)
    if not sol.success:
        return None
    y = y0.copy()
    y[move] = sol.x
    res = float(np.max(np.abs(F(sol.x))))
    J = jacobian(y, p)[np.ix_(move, move)]
    return CommitteeFixedPoint(y, tuple(complex(e) for e in np.linalg.eigvals(J)), res)
