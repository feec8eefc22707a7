"""The test error E = P(tau sigma(xi) <= 0) and the adversarial error S (the same after the attack) of the
committee machine: an outer rule over K - 1 coordinates and an exact Gaussian probability along a line.

Pure mathematics: numpy and scipy.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

from .local_fields import output, attack_fields, sqrt_gram
from .params import CommitteeParams, State
from .quadrature import drift_nodes, qmc_nodes, quadrature_nodes

__all__ = ["errors", "test_error", "adversarial_error", "ERROR_NODES", "ERROR_QMC_LOG2"]

#: Outer rule of the error integrals (K - 1 dimensions; the last one is done exactly on a line): Gauss-Hermite
#: with these nodes for K = 2, for K >= 3 quasi-Monte Carlo with 2^ERROR_QMC_LOG2 points (and mirrors).  The
#: conditional misclassified mass has kinks in the outer coordinates (where the number of roots on the line
#: changes), where a product rule converges slowly: at K = 4 xor states, 10 nodes per dimension missed E by
#: up to 4e-3 and 16 nodes by 3e-3, 2^10 QMC points by below 1e-3 (against 4e6 samples of the fields, SE 2.5e-4).
ERROR_NODES = {1: 1, 2: 48}
ERROR_QMC_LOG2 = 10


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
                return tau * output(lt, v)

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
