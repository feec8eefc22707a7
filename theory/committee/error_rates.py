"""The test error E = P(tau sigma(xi) <= 0) and the adversarial error S (the same after the attack) of the
committee machine: an outer rule over K - 1 coordinates and an exact Gaussian probability along a line.

Pure mathematics: numpy and scipy.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf, erfinv, ndtr

from .local_fields import output, attack_fields, sqrt_gram
from .params import CommitteeParams, State
from .quadrature import drift_rule, quadrature_nodes

__all__ = ["axis_unit", "clean_error", "errors", "errors_with_se", "ERROR_E_RULE", "ERROR_S_RULE", "test_error", "adversarial_error", "ERROR_NODES", "ERROR_QMC_LOG2"]

#: Outer rule of the adversarial error S (K - 1 dimensions; the last one is done exactly on a line):
#: Gauss-Hermite with these nodes for K = 2, for K >= 3 quasi-Monte Carlo with 2^ERROR_QMC_LOG2 points (and
#: mirrors).  The conditional misclassified mass has kinks in the outer coordinates (where the number of roots on
#: the line changes), where a product rule converges slowly: at K = 4 xor states, 10 nodes per dimension missed E by
#: up to 4e-3 and 16 nodes by 3e-3, 2^10 QMC points by below 1e-3 (against 4e6 samples of the fields, SE 2.5e-4).
ERROR_NODES = {1: 1, 2: 48}
ERROR_QMC_LOG2 = 10  # the former outer rule of K >= 3: qmc:10 (2046 lines)
#: K >= 3: randomised QMC with as many lines as the former rule (8 blocks of 2^7 points and mirrors), whose spread
#: is S's standard error
ERROR_S_RULE = "rqmc:7:8"
#: Outer rule of the test error E on the axis lines (:func:`axis_unit`): randomised QMC, 8 scrambled blocks of
#: 2^13 Sobol points and mirrors (131,072 lines per cluster, one erfinv and one normal probability each), whose
#: spread is E's standard error.  On the large-learning-rate xor case (simulate.committee.mc.large_rate_case) the
#: former rule (grad lines, 2^10 QMC points, bisection) read E 5.7e-4 low at alpha 50 (0.06059 against 0.06123).
ERROR_E_RULE = "rqmc:13:8"


def axis_unit(Q: np.ndarray, v: np.ndarray) -> int | None:
    """The unit j whose field lambda_j has the smallest variance given the other fields (the largest (Q^-1)_jj)
    among those with v_j != 0, or None when Q is too close to singular for a Cholesky factor.

    Along a line on which only lambda_j moves, sigma = sum_k v_k erf(lambda_k) is monotone: the clean decision
    boundary is crossed at most once, at lambda_j = erfinv(-(sum_{k != j} v_k erf(lambda_k)) / v_j).  The
    misclassified mass of the line is then one normal probability, and it leaves the outer integrand non-smooth
    only where that root runs off to infinity, with a strength set by the conditional standard deviation s of
    lambda_j: the mass there behaves like (1 - |a|)^(1 / (2 s^2)) in a = the erf argument, so the smallest s gives
    the smoothest outer integrand."""
    K = Q.shape[0]
    L, _ = sqrt_gram(Q)
    if not np.allclose(L, np.tril(L)) or np.min(np.diag(L)) <= 0:
        return None
    prec = np.diag(np.linalg.inv(Q))
    ok = np.abs(v) > 1e-12 * np.max(np.abs(v))
    if not ok.any():
        return None
    return int(np.argmax(np.where(ok, prec, -np.inf)))


def clean_error(state: State, p: CommitteeParams, rule: str | None = None) -> tuple[float, float]:
    """(E, its standard error): E = P(tau sigma(xi) <= 0) on lines that move one field, lambda_j (:func:`axis_unit`).

    Given the cluster c, lambda = mean_c + sqrt(v_c) L zeta; the line through an outer node moves along u with
    L u parallel to e_j, so sigma(t) = sum_{k != j} v_k erf(lambda_k) + v_j erf(lambda_j(t)) is monotone and
    tau sigma <= 0 on one half-line, bounded by t* = (erfinv(a) - lambda_j(0)) / (sqrt(v_c) (L u)_j) with
    a = -sum_{k != j} v_k erf(lambda_k) / v_j clipped to [-1, 1]: the mass of the line is Phi(+-t*), exactly.  The
    outer rule over the K - 1 coordinates orthogonal to u is ``rule`` (default ERROR_E_RULE; "rqmc:m:r" gives a
    standard error from its r blocks, a deterministic rule 0).  Falls back to :func:`errors`' grad lines (standard
    error NaN) where Q is too close to singular for a Cholesky factor."""
    Q, R, b, v = state
    K = p.K
    j = axis_unit(Q, v)
    if j is None:
        return errors(state, p, 0.0, line="grad")[0], float("nan")
    if K > 1:
        r = drift_rule(K - 1, ERROR_E_RULE if rule is None else rule)
        nodes, weights, blocks = r.nodes, r.weights, r.blocks
    else:
        nodes, weights, blocks = np.zeros((1, 0)), np.ones(1), 1
    L, _ = sqrt_gram(Q)
    mix = p.mixture()
    direction = np.linalg.solve(L, np.eye(K)[j])
    basis = np.linalg.qr(np.column_stack([direction, np.eye(K)]))[0][:, :K]  # first column along the line
    line_dir = L @ basis[:, 0]  # parallel to e_j
    others = np.delete(np.arange(K), j)
    per_block = np.zeros(blocks)
    for c in range(len(mix.priors)):
        sd = math.sqrt(mix.variances[c])
        tau = mix.labels[c]
        base = mix.means[c] @ R.T - b + sd * (nodes @ (L @ basis[:, 1:]).T)  # (M, K): the fields at t = 0
        a = -(erf(base[:, others]) @ v[others]) / v[j]
        with np.errstate(over="ignore", invalid="ignore"):
            root = (erfinv(np.clip(a, -1.0, 1.0)) - base[:, j]) / (sd * line_dir[j])
        # tau sigma(t) increases with t iff tau v_j (L u)_j > 0; misclassified where it is <= 0
        mass = ndtr(root) if tau * v[j] * line_dir[j] > 0 else ndtr(-root)
        per_block += mix.priors[c] * (weights * mass).reshape(blocks, -1).sum(axis=1) * blocks
    E = float(per_block.mean())
    se = float(per_block.std(ddof=1) / math.sqrt(blocks)) if blocks > 1 else 0.0
    return E, se


def errors(state: State, p: CommitteeParams, eps_test: float, steps: int | None = None, step: float | None = None,
           n_outer: int | str | None = None, n_line: int = 64, bisections: int = 44,
           line: str = "axis") -> tuple[float, float]:
    """(E, S(eps_test)) of :func:`errors_with_se` (the same arguments)."""
    return errors_with_se(state, p, eps_test, steps, step, n_outer, n_line, bisections, line)[:2]


def errors_with_se(state: State, p: CommitteeParams, eps_test: float, steps: int | None = None,
                   step: float | None = None, n_outer: int | str | None = None, n_line: int = 64,
                   bisections: int = 44, line: str = "axis") -> tuple[float, float, float, float]:
    """(E, S(eps_test), se(E), se(S)) of the state, the attack with ``steps`` steps of size ``step``*eps_test (default: the
    training attack's s and a).

    Misclassification means tau sigma <= 0.  Given the cluster, the fields are lambda = mean + sqrt(v_c) L zeta;
    the integral over zeta is split into an outer rule over K - 1 coordinates and, for each outer node, an exact
    1-D Gaussian probability along a line.  E: ``line="axis"`` (default) by :func:`clean_error` (lines that move one
    field, a closed-form root, outer rule ERROR_E_RULE or ``n_outer``); ``line="grad"`` as S.  S: the line runs
    along the gradient of sigma at the cluster's mean field, the outer rule is ``n_outer`` (as in
    :func:`drift_rule`; default ``ERROR_NODES`` for K = 2, ``ERROR_S_RULE`` for K >= 3); the sign changes of tau sigma~(t) are
    bracketed on a grid of ``n_line`` points in [-9, 9], located by bisection, and the normal masses of the
    misclassified intervals are summed (a bracket holding two roots is missed: the grid spacing 0.29 is far below
    the scale of sigma~).  Exact for K = 1 up to the bisection tolerance.  The standard errors are those of a
    randomised outer rule ("rqmc:m:r": the spread of its r blocks), 0 for a deterministic one.
    """
    if line not in ("axis", "grad"):
        raise ValueError(f"line must be 'axis' or 'grad', got {line!r}")
    steps = p.pgd_steps if steps is None else int(steps)
    step = p.pgd_step if step is None else float(step)
    mix = p.mixture()
    Q, R, b, v = state
    K = p.K
    L, _ = sqrt_gram(Q)
    blocks = 1
    if K > 1:
        if n_outer is not None or K not in ERROR_NODES:
            r = drift_rule(K - 1, ERROR_S_RULE if n_outer is None else n_outer)
            nodes, weights, blocks = r.nodes, r.weights, r.blocks
        else:
            nodes, weights = quadrature_nodes(K - 1, ERROR_NODES[K])
    else:
        nodes, weights = np.zeros((1, 0)), np.ones(1)
    t = np.linspace(-9.0, 9.0, n_line)
    Phi_t = ndtr(t)
    out, se = [], []
    for eps in (0.0, eps_test):
        if eps == 0.0 and out:  # S at eps_test = 0 is E
            out.append(out[0])
            se.append(se[0])
            continue
        if eps == 0.0 and line == "axis":
            E, seE = clean_error(state, p, n_outer)
            out.append(E)
            se.append(seE)
            continue
        per_block = np.zeros(blocks)
        for c in range(len(mix.priors)):
            sd = math.sqrt(mix.variances[c])
            tau = mix.labels[c]
            mean = mix.means[c] @ R.T - b
            # the line runs along the gradient of tau sigma at the mean field, in the standard-normal
            # coordinates zeta (lambda = mean + sd L zeta), so that it crosses the decision boundary transversally
            direction = sd * L.T @ (v * np.exp(-mean * mean))
            if not np.linalg.norm(direction) > 1e-12:
                direction = L.T @ np.ones(K)
            if not np.linalg.norm(direction) > 1e-12:
                direction = np.eye(K)[0]
            # the outer rule covers the orthogonal complement of the line
            basis = np.linalg.qr(np.column_stack([direction, np.eye(K)]))[0][:, :K]  # first column along it
            line_dir = L @ basis[:, 0]
            base = mean + sd * (nodes @ (L @ basis[:, 1:]).T)  # (M, K)
            def f(bb, tt):  # tau sigma~ at the fields bb + sqrt(v_c) tt line
                _, lt = attack_fields(bb + sd * tt[..., None] * line_dir, tau, Q, v, eps, steps, step)
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
            per_block += mix.priors[c] * (weights * mass).reshape(blocks, -1).sum(axis=1) * blocks
        out.append(float(per_block.mean()))
        se.append(float(per_block.std(ddof=1) / math.sqrt(blocks)) if blocks > 1 else 0.0)
    return out[0], out[1], se[0], se[1]


def test_error(state: State, p: CommitteeParams, **kw) -> float:
    """E = P(sign sigma(xi) != tau)."""
    return errors(state, p, 0.0, **kw)[0]


test_error.__test__ = False  # not a pytest test


def adversarial_error(state: State, p: CommitteeParams, eps_test: float, **kw) -> float:
    """S(eps_test) = P(sign sigma(xi + delta) != tau), delta from the PGD attack."""
    return errors(state, p, eps_test, **kw)[1]
