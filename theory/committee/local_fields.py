"""The local fields of the committee machine given a cluster, and the PGD-l2 attack on them.

lambda = R m_c - b + sqrt(v_c) L zeta with L L^T = Q and zeta ~ N(0, I_K) (:func:`field_grid`); the attack acts
on the fields only through Q (:func:`attack_fields`; derivation in :mod:`theory.committee.ode`).  Pure
mathematics: numpy and scipy.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

from .params import Mixture, State

__all__ = ["sqrt_gram", "field_grid", "attack_fields", "output", "TWO_OVER_SQRT_PI"]

TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)  # erf'(x) = TWO_OVER_SQRT_PI exp(-x^2)


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


def output(lam, v):
    """sigma = sum_k v_k erf(lambda_k) over the last axis."""
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
        sig = output(lt, v)[..., None]
        g = (sig - tau) * v * TWO_OVER_SQRT_PI * np.exp(-lt * lt)
        gQ = g @ Q
        gn = np.sqrt(np.maximum(np.sum(gQ * g, axis=-1, keepdims=True), 0.0))
        c = c + step * eps * np.divide(g, gn, out=np.zeros_like(g), where=gn > 0)
        cQ = c @ Q
        cn = np.sqrt(np.maximum(np.sum(cQ * c, axis=-1, keepdims=True), 0.0))
        c = c * np.minimum(1.0, np.divide(eps, cn, out=np.ones_like(cn), where=cn > 0))
        lt = lam + c @ Q
    return c, lt


# the former private names (imported by older code through theory.committee.ode)
_output, _TWO_OVER_SQRT_PI = output, TWO_OVER_SQRT_PI
