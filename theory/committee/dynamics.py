"""The drift of the committee machine's order parameters: the data averages of the ODEs of
:mod:`theory.committee.ode` by a quadrature rule (:mod:`theory.committee.quadrature`), the drift built from
them, and its quadrature error estimate.

Pure mathematics: numpy and scipy.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

from ..linear.params import ParameterError
from .closed_form import exact_averages
from .local_fields import TWO_OVER_SQRT_PI, output, attack_fields, field_grid
from .params import CommitteeParams, Mixture, State, pack, unpack
from .quadrature import Rule, drift_rule, finer_rule, rule_for, rule_parts

__all__ = ["averages", "drift_from_averages", "drift", "unpack_drift", "drift_error", "quadrature_error", "rhs",
           "DETERMINISTIC_ERROR_FACTOR"]

DETERMINISTIC_ERROR_FACTOR = 2.0  # drift_error of a deterministic rule: this times the change against a finer one


def averages(state: State, p: CommitteeParams, rule: Rule, attack_in_average: bool = True):
    """The data averages of the drift per block of the rule: <e_k y_d> (B, K, D), <e_k u_l> (B, K, K),
    <v_c e_k e_l> (B, K, K), <e_k> (B, K), <(sigma~-tau) erf(lambda~_k)> (B, K), each block's weights scaled to 1.
    The rule "exact" (no attack in the average) gives the closed forms of :mod:`theory.committee.closed_form`."""
    if rule.name == "exact":
        _check_exact(p, attack_in_average)
        return exact_averages(state, p)[0]
    parts = [_averages_on(state, p, mix, r, attack_in_average) for mix, r in rule_parts(state, p, rule)]
    return tuple(sum(a[i] for a in parts) for i in range(5))


def _averages_on(state: State, p: CommitteeParams, mix: Mixture, rule: Rule, attack_in_average: bool):
    Q, R, b, v = state
    B = rule.blocks
    lam, hbar = field_grid(state, mix, rule.nodes)
    tau = mix.labels[:, None]
    eps = p.eps if attack_in_average else 0.0
    c, lt = attack_fields(lam, tau, Q, v, eps, p.pgd_steps, p.pgd_step)
    sig = output(lt, v)
    err = sig - tau  # (C, M)
    e = err[..., None] * v * TWO_OVER_SQRT_PI * np.exp(-lt * lt)  # (C, M, K)
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


def _check_exact(p: CommitteeParams, attack_in_average: bool) -> None:
    if p.eps > 0 and attack_in_average:
        raise ParameterError(f"the quadrature rule 'exact' (closed form) needs eps = 0, got eps = {p.eps:g}; with the "
                             f"attack use 'gh:N', 'rqmc:M:R' or 'line:N' (theory.committee.drift_rule)")


def _exact_drift_error(state: State, p: CommitteeParams, renormalise: bool, attack_in_average: bool):
    """The packed drift by the closed form and a bound of its rounding error: the averages' bounds carried through
    the linear map drift_from_averages entrywise in absolute value (|J| bound, J its matrix)."""
    _check_exact(p, attack_in_average)
    avg, bounds = exact_averages(state, p)
    y = pack(drift_from_averages(state, p, *(a[0] for a in avg), renormalise=renormalise))
    shapes = [a[0].shape for a in avg]
    zero = [np.zeros(s) for s in shapes]
    base = pack(drift_from_averages(state, p, *zero, renormalise=renormalise))
    err = np.zeros_like(y)
    for i, bnd in enumerate(bounds):  # the map is linear: one column of J per entry of the averages
        for j in np.flatnonzero(bnd[0]):
            unit = [z.copy() for z in zero]
            unit[i].flat[j] = 1.0
            col = pack(drift_from_averages(state, p, *unit, renormalise=renormalise)) - base
            err += np.abs(col) * bnd[0].flat[j]
    return y, err


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

    The closed form ("exact", no attack): a bound of its rounding error (:mod:`theory.committee.closed_form`).
    Randomised rules ("rqmc:m:r"): the standard error of the mean of the r blocks (std/sqrt(r); the error over
    it follows Student's t with r - 1 degrees of freedom).  Deterministic rules ("gh:n", "qmc:m"): twice the change
    against the rule of higher order (:func:`theory.committee.quadrature.finer_rule`: "gh:(n + n/2)", "qmc:(m+1)",
    "line:(n + n/2):(2P)"), which bounds the error of the coarser rule
    while the rules converge at least like n^-1.7 (error(n) = change/(1 - (2/3)^p) <= 2 change).
    """
    rule = rule_for(p, n)
    ren, att = variant.get("renormalise", True), variant.get("attack_in_average", True)
    if rule.name == "exact":
        return _exact_drift_error(state, p, ren, att)
    blocks = _block_drifts(state, p, rule, ren, att, backend)
    y = blocks.mean(axis=0)
    if rule.blocks > 1:
        return y, blocks.std(axis=0, ddof=1) / math.sqrt(rule.blocks)
    y2 = _block_drifts(state, p, drift_rule(p.K, finer_rule(rule.name), p.eps), ren, att, backend).mean(axis=0)
    return y, DETERMINISTIC_ERROR_FACTOR * np.abs(y - y2)


def quadrature_error(state: State, p: CommitteeParams, n: int | str | None = None, *, backend=None) -> float:
    """max |error estimate| / max |drift| of :func:`drift_error` (0 for a vanishing drift)."""
    y, err = drift_error(state, p, n, backend=backend)
    scale = float(np.max(np.abs(y)))
    return float(np.max(err)) / scale if scale > 0 else 0.0


def rhs(y, p: CommitteeParams, n: int | str | None = None, **variant) -> np.ndarray:
    """The drift on the packed state vector (:func:`pack`)."""
    return pack(drift(unpack(y, p.K, p.D), p, n, **variant))
