"""Large-N ODEs of online adversarial training for the order parameters R = w.B and b.

Microscopic rule (one example per step, alpha = steps/N):
    xi_adv = xi - tau*eps*w,   x = w.xi_adv - b = h - tau*eps - b,   delta = dL/dx,
    w <- (w - (eta_w/N) delta xi_adv) / |.|,   b <- b + (eta_b/N) delta.
Expanding the renormalisation to O(1/N) (|xi_adv|^2 = N v_tau + O(sqrt N) gives the eta_w^2 term) and
averaging over the data with E[h_B | h, tau] = tau (rho/2)(1 - R^2) + R h gives (derived symbolically
in :mod:`theory.derivation`, re-derived in docs/theory.md):

    dR/dalpha = -eta_w (rho/2)(1 - R^2) sum_tau P(tau) tau <delta>_tau
                - (eta_w^2/2) R sum_tau P(tau) v_tau <delta^2>_tau
    db/dalpha =  eta_b sum_tau P(tau) <delta>_tau

where <.>_tau averages over x ~ N(tau (rho R/2 - eps) - b, v_tau) (and over the budget law of eps), with
the factor 1{tau x < 0} inside when only non-robust examples are trained on.  For the quadratic loss
and erf output, delta = (erf(x/s) - tau)(2/(s sqrt pi)) exp(-x^2/s^2) and the averages are in closed form
(:func:`theory.gaussian.erf_exp_moments`); other cases use quadrature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import root
from scipy.special import erf, erfcx, owens_t

from ..core.numerics import central_jacobian
from ..core.gaussian import erf_exp_moments, gauss_hermite_mean, truncated_gauss_mean
from .params import Params, ParameterError, eps_quadrature

__all__ = ["loss_derivative", "field_moments", "drift", "rhs", "jacobian", "FixedPoint", "fixed_points", "BACKENDS"]

BACKENDS = ("auto", "closed", "quadrature", "hermite")
_SQRT_PI = math.sqrt(math.pi)


def loss_derivative(x, tau, loss: str = "quadratic", erf_scale: float = 1.0):
    """delta = dL/dx for the output sigma = erf(x/s) and label tau (numpy, broadcasting)."""
    y = np.asarray(x, dtype=float) / erf_scale
    if loss == "quadratic":  # L = (sigma - tau)^2/2
        return (erf(y) - tau) * (2.0 / (erf_scale * _SQRT_PI)) * np.exp(-y * y)
    if loss == "cross_entropy":  # L = -log((1 + tau sigma)/2); 1 + tau erf(y) = erfcx(-tau y) exp(-y^2)
        return -tau * (2.0 / (erf_scale * _SQRT_PI)) / erfcx(-tau * y)
    raise ParameterError(f"loss must be one of quadratic, cross_entropy, got {loss!r}")


def _cluster_moments(R, b, tau, v, *, rho, eps, erf_scale, loss, non_robust_only, backend):
    """(<delta>, <delta^2>) over x ~ N(tau (rho R/2 - eps) - b, v) at one budget eps."""
    mu_x = tau * (0.5 * rho * R - eps) - b
    return field_moments(mu_x, v, tau, erf_scale=erf_scale, loss=loss, non_robust_only=non_robust_only,
                         backend=backend)


def field_moments(mu_x, v, tau, *, erf_scale=1.0, loss="quadratic", non_robust_only=False, backend="closed"):
    """(<delta>, <delta^2>) over the local field x ~ N(mu_x, v) of the cluster tau (with 1{tau x < 0} inside
    when non_robust_only); ``backend`` one of 'closed', 'quadrature', 'hermite' (see :func:`drift`)."""
    if backend == "auto":
        backend = resolve_backend(backend, loss, non_robust_only)
    if backend == "closed":
        s = erf_scale
        A0, A1, B0, B1, B2 = erf_exp_moments(mu_x / s, v / (s * s))
        k = 2.0 / (s * _SQRT_PI)
        return k * (A1 - tau * A0), k * k * (B2 - 2.0 * tau * B1 + B0)

    def d1(x):
        return loss_derivative(x, tau, loss, erf_scale)

    def d2(x):
        return d1(x) ** 2

    if backend == "hermite":
        return gauss_hermite_mean(d1, mu_x, v), gauss_hermite_mean(d2, mu_x, v)
    lower, upper = (-np.inf, np.inf)
    if non_robust_only:  # misclassified after the perturbation: tau x < 0
        lower, upper = (-np.inf, 0.0) if tau > 0 else (0.0, np.inf)
    return (truncated_gauss_mean(d1, mu_x, v, lower, upper),
            truncated_gauss_mean(d2, mu_x, v, lower, upper))


def resolve_backend(backend: str, loss: str, non_robust_only: bool) -> str:
    if backend not in BACKENDS:
        raise ParameterError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    closed_ok = loss == "quadratic" and not non_robust_only
    if backend == "auto":
        return "closed" if closed_ok else "quadrature"
    if backend == "closed" and not closed_ok:
        raise ParameterError("backend 'closed' exists only for loss='quadratic' without non_robust_only")
    if backend == "hermite" and non_robust_only:
        raise ParameterError("backend 'hermite' cannot integrate the indicator of non_robust_only")
    return backend


#: Budget quadrature nodes per law (:func:`theory.params.eps_quadrature`; for halfnormal, per panel of 4).
#: halfnormal: 12 per panel differ from 64 by at most 6e-13 in the drift (measured at R, b = (0, 0),
#: (0.5, 0.3), (0.98, -0.2), fixed and non-robust-only), and cost a quarter of 32.
EPS_NODES = {"uniform": 32, "exponential": 32, "halfnormal": 12}


def drift(R, b, *, rho, prior, v1, v2, eta_w, eta_b, eps, erf_scale=1.0, eps_law="fixed",
          loss="quadratic", non_robust_only=False, backend="auto", eps_nodes=None):
    """(dR/dalpha, db/dalpha); every argument but the strings broadcasts, e.g. over a (rho, eps) grid.

    For ``eps_law`` other than 'fixed' a scalar ``eps`` takes the quadrature nodes of that mean budget; an
    array of mean budgets uses that the laws are scale families (a budget is eps U with E[U] = 1): the nodes
    for mean eps are eps times the nodes for mean 1, with the same weights, laid along a leading axis and
    summed.
    """
    if eps_law != "fixed" and np.ndim(eps) > 0:
        nodes, weights = eps_quadrature(eps_law, 1.0, EPS_NODES.get(eps_law, 32) if eps_nodes is None
                                        else eps_nodes)
        lead = (-1,) + (1,) * np.ndim(eps)
        dR, db = drift(R, b, rho=rho, prior=prior, v1=v1, v2=v2, eta_w=eta_w, eta_b=eta_b,
                       eps=np.asarray(eps, float) * nodes.reshape(lead), erf_scale=erf_scale, eps_law="fixed",
                       loss=loss, non_robust_only=non_robust_only, backend=backend)
        w = weights.reshape(lead)
        return np.sum(w * dR, axis=0), np.sum(w * db, axis=0)
    backend = resolve_backend(backend, loss, non_robust_only)
    R = np.asarray(R, dtype=float)
    b = np.asarray(b, dtype=float)
    shape = np.broadcast_shapes(R.shape, b.shape, *(np.shape(a) for a in (rho, prior, v1, v2, erf_scale)))
    if eps_law == "fixed":
        nodes, weights = (np.asarray(eps, dtype=float),), (1.0,)
    else:
        nodes, weights = eps_quadrature(eps_law, float(eps), EPS_NODES.get(eps_law, 32) if eps_nodes is None
                                        else eps_nodes)
        if len(nodes) * max(int(np.prod(shape)), 1) <= 4096:
            # small states: all budget nodes at once along a leading axis (a Python loop otherwise)
            lead = (len(nodes),) + (1,) * len(shape)
            nodes, weights = (np.reshape(nodes, lead),), (np.reshape(weights, lead),)
    sum_tau_M1 = 0.0  # sum_tau P tau <delta>
    sum_M1 = 0.0  # sum_tau P <delta>
    sum_vM2 = 0.0  # sum_tau P v <delta^2>
    for tau, P, v in ((1.0, prior, v1), (-1.0, 1.0 - np.asarray(prior), v2)):
        for e, we in zip(nodes, weights):
            m1, m2 = _cluster_moments(R, b, tau, v, rho=rho, eps=e, erf_scale=erf_scale, loss=loss,
                                      non_robust_only=non_robust_only, backend=backend)
            if np.ndim(we):  # the budget nodes lie along the leading axis
                m1, m2 = np.sum(we * m1, axis=0), np.sum(we * m2, axis=0)
            else:
                m1, m2 = we * m1, we * m2
            sum_tau_M1 = sum_tau_M1 + P * tau * m1
            sum_M1 = sum_M1 + P * m1
            sum_vM2 = sum_vM2 + P * v * m2
    dR = -eta_w * 0.5 * rho * (1.0 - R * R) * sum_tau_M1 - 0.5 * eta_w**2 * R * sum_vM2
    db = eta_b * sum_M1
    return dR, db


def _rhs_scalar_closed(R: float, b: float, p: Params) -> tuple[float, float]:
    """The closed-form right-hand side for one state, with the math module (no array overhead).

    The same formulas as :func:`drift` with backend 'closed' and a fixed budget; kept because a single
    trajectory calls it a few hundred times and numpy's per-call overhead would dominate.
    """
    s = p.erf_scale
    k = 2.0 / (s * _SQRT_PI)
    sum_tau_M1 = sum_M1 = sum_vM2 = 0.0
    for tau, P, v in ((1.0, p.prior, p.v1), (-1.0, 1.0 - p.prior, p.v2)):
        mu = (tau * (0.5 * p.rho * R - p.eps) - b) / s
        var = v / (s * s)
        d1, d2 = 1.0 + 2.0 * var, 1.0 + 4.0 * var
        c1 = math.exp(-mu * mu / d1) / math.sqrt(d1)
        c2 = math.exp(-2.0 * mu * mu / d2) / math.sqrt(d2)
        mu2, var2 = mu / d2, var / d2
        q2 = math.sqrt(1.0 + 2.0 * var2)
        A1 = c1 * math.erf(mu / d1 / math.sqrt(1.0 + 2.0 * var / d1))
        B1 = c2 * math.erf(mu2 / q2)
        B2 = c2 * (1.0 - 8.0 * float(owens_t(math.sqrt(2.0) * mu2 / q2, 1.0 / math.sqrt(1.0 + 4.0 * var2))))
        m1 = k * (A1 - tau * c1)
        m2 = k * k * (B2 - 2.0 * tau * B1 + c2)
        sum_tau_M1 += P * tau * m1
        sum_M1 += P * m1
        sum_vM2 += P * v * m2
    dR = -p.eta_w * 0.5 * p.rho * (1.0 - R * R) * sum_tau_M1 - 0.5 * p.eta_w**2 * R * sum_vM2
    return dR, p.eta_b * sum_M1


def rhs(R, b, params: Params, backend: str = "auto"):
    """(dR/dalpha, db/dalpha) at (R, b) for the parameters ``params``."""
    p = params
    if (backend in ("auto", "closed") and isinstance(R, float) and isinstance(b, float)
            and p.eps_law == "fixed" and p.loss == "quadratic" and not p.non_robust_only):
        return _rhs_scalar_closed(R, b, p)
    return drift(R, b, rho=p.rho, prior=p.prior, v1=p.v1, v2=p.v2, eta_w=p.eta_w, eta_b=p.eta_b,
                 eps=p.eps, erf_scale=p.erf_scale, eps_law=p.eps_law, loss=p.loss,
                 non_robust_only=p.non_robust_only, backend=backend)


def jacobian(R: float, b: float, params: Params, h: float = 1e-6) -> np.ndarray:
    """2x2 Jacobian d(dR, db)/d(R, b) by central differences (error O(h^2) ~ 1e-12 relative)."""
    return central_jacobian(lambda y: [float(v) for v in rhs(float(y[0]), float(y[1]), params)], [R, b], h)


@dataclass(frozen=True)
class FixedPoint:
    """A fixed point (R*, b*) of the ODEs with the eigenvalues of its Jacobian."""

    R: float
    b: float
    eigenvalues: tuple[complex, ...]

    @property
    def stable(self) -> bool:
        return all(ev.real < 0 for ev in self.eigenvalues)

    @property
    def kind(self) -> str:
        re = [ev.real for ev in self.eigenvalues]
        if all(r < 0 for r in re):
            return "stable node" if all(abs(ev.imag) < 1e-14 for ev in self.eigenvalues) else "stable focus"
        if all(r > 0 for r in re):
            return "unstable"
        return "saddle"


def fixed_points(params: Params, starts=None, tol: float = 1e-12, maxfev: int = 100) -> list[FixedPoint]:
    """Fixed points of (dR, db) = 0 found by Powell's hybrid method (MINPACK hybr) from several starts.

    Default starts: a grid over R in [-0.9, 0.9] and b in {-2, 0, 2} plus (0.99, 0); good extra starts
    are the end points of long trajectories.  Each search is capped at ``maxfev`` evaluations (a start
    that wanders off |R| <= 1 is abandoned).  Duplicates (within 1e-7) and points outside |R| <= 1 are
    dropped; the list is sorted by decreasing R.
    """
    if starts is None:
        starts = [(R0, b0) for R0 in np.linspace(-0.9, 0.9, 5) for b0 in (-2.0, 0.0, 2.0)]
        starts.append((0.99, 0.0))

    def F(z):
        dR, db = rhs(z[0], z[1], params)
        return [float(dR), float(db)]

    found: list[FixedPoint] = []
    for z0 in starts:
        sol = root(F, np.asarray(z0, dtype=float), method="hybr", tol=tol, options={"maxfev": maxfev})
        if not sol.success:
            continue
        Rs, bs = (float(v) for v in sol.x)
        if not (-1.0 <= Rs <= 1.0) or max(abs(f) for f in F(sol.x)) > 1e-10:
            continue
        if any(abs(Rs - fp.R) < 1e-7 and abs(bs - fp.b) < 1e-7 for fp in found):
            continue
        ev = np.linalg.eigvals(jacobian(Rs, bs, params))
        found.append(FixedPoint(Rs, bs, tuple(complex(e) for e in ev)))
    return sorted(found, key=lambda fp: -fp.R)
