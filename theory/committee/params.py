"""Parameters, data model and order parameters of the soft committee machine: :class:`CommitteeParams`, the
mixture of a preset (:func:`mixture`), the state (Q, R, b, v) and its packed vector (:func:`pack`).

The symbols are those of the glossary in :mod:`theory.committee.ode`.  Pure mathematics: numpy, no I/O.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..core.params import FrozenParams
from ..linear.params import FIELD_HELP as _LINEAR_HELP
from ..linear.params import ParameterError, Params, check_range

__all__ = ["CommitteeParams", "Mixture", "State", "PRESETS", "COMMITTEE_FIELD_HELP", "COMMITTEE_INT_RANGES",
           "COMMITTEE_RANGES", "mixture", "pack", "unpack", "state_names"]

PRESETS = ("talk", "xor")
_SHARED = ("rho", "prior", "v1", "v2", "eta_w", "eta_b", "eps")  # validated by theory.params.Params

#: Valid ranges of the committee's own fields (the shared ones are theory.params.RANGES'), in the one range
#: format (lo, hi, closed/open ends, reason); the integer fields take whole numbers only.
COMMITTEE_INT_RANGES = {
    "K": (1, 8, "[]", "the drift's Gaussian averages are K-dimensional; their accuracy is measured up to K = 4 and the "
             "cost grows like K^2 per node beyond"),
    "pgd_steps": (1, 1000, "[]", "each PGD step is a pass over the quadrature nodes"),
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
            lo, hi, _, why = COMMITTEE_INT_RANGES[name]
            try:
                ok = not isinstance(value, (bool, np.bool_)) and float(value).is_integer() and lo <= value <= hi
            except (TypeError, ValueError, OverflowError):
                ok = False
            if not ok:
                raise ParameterError(f"{name} must be an integer in [{lo}, {hi}] ({why}), got {value!r}")
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
