"""Online adversarial training of the linear erf classifier on a Gaussian mixture of any means and covariances.

Glossary (the notation of :mod:`theory.params`, extended; derivation in docs/structured.md):

==============  ============================================================  ======================
symbol          meaning                                                       domain / shape
==============  ============================================================  ======================
N               input dimension                                               N -> infinity
tau             label / class, +1 with prior p, -1 otherwise                  {+1, -1}
mu_tau          class mean                                                    (N,), |mu_tau| = O(1)
Sigma_tau       class covariance, symmetric PSD, eigenvalues O(1)             (N, N)
U, lambda_tau   shared eigenbasis Sigma_tau = U diag(lambda_tau) U^T          (N, N), (N,)
vbar_tau        tr(Sigma_tau)/N, the mean variance per coordinate
w               weight vector, |w| = 1 after every step; b the threshold
m, C            mean E[w] and covariance Cov(w) over the data stream         (N,), (N, N)
c               diag of C in the eigenbasis (shared-covariance path)          (N,)
M_tau           w.mu_tau  -> mu_tau.m  (concentrates)
Q_tau           w'Sigma_tau w -> m'Sigma_tau m + tr(Sigma_tau C)  (concentrates)
alpha           learning time, steps/N; the steps are eta_w/N on w, eta_b/N on b
==============  ============================================================  ======================

Microscopic rule (that of :mod:`theory.ode`): xi ~ N(mu_tau, Sigma_tau), xi_adv = xi - tau eps w,
x = w.xi_adv - b = h - tau eps - b with h = w.xi, delta = dL/dx,
w <- (w - (eta_w/N) delta xi_adv)/|.|, b <- b + (eta_b/N) delta.

Given w, the field h of class tau is exactly N(M_tau, Q_tau), and E[xi | h] = mu_tau + Sigma_tau w (h - M_tau)/Q_tau,
so with <.>_tau the average over x ~ N(M_tau - tau eps - b, Q_tau) (and the budget law):

    f       = -eta_w sum_tau P_tau <delta>_tau mu_tau
    gamma_t = <delta (h - M)>_tau / Q_tau
    g       = eta_w sum_tau P_tau <delta h>_tau - (eta_w^2/2) sum_tau P_tau vbar_tau <delta^2>_tau
    A       = g I - eta_w sum_tau P_tau gamma_tau Sigma_tau
    D       = (eta_w^2/N) sum_tau P_tau <delta^2>_tau Sigma_tau

    dm/dalpha = f + A m,      dC/dalpha = A C + C A + D,      db/dalpha = eta_b sum_tau P_tau <delta>_tau.

The last term of g is the renormalisation at order 1/N (|xi_adv|^2 = N vbar_tau + O(sqrt N)); D is the
eta_w^2 noise of the step, which gives each component of w a random part of the same size O(N^-1/2) as its
mean.  tr(m m' + C) = 1 is conserved.  If the covariances share an eigenbasis U, A is diagonal there and
C stays diagonal when it starts so (C(0) = 0 for a given w(0), or I/N for an isotropic random start): the
state is (U'm, c, b), 2N + 1 numbers (``SpectralState``); otherwise the full (m, C, b) (``FullState``).

For mu_tau = tau (rho/2) B and Sigma_tau = v_tau I it reduces exactly to the ODE of :mod:`theory.ode`
for R = B.m (tests/test_structured.py).

Errors of sign(w.xi - b) from the state: E = sum_tau P_tau Phi(-tau (M_tau - b)/sqrt Q_tau); l_2 budget eps:
S = sum_tau P_tau Phi((eps - tau (M_tau - b))/sqrt Q_tau); an l_inf (l_1) budget shifts the margin by
eps |w|_1 (eps |w|_inf), whose expectation follows from the law of w's components in the pixel basis,
w_i ~ N(m_i, C_ii) (Gaussian: the dynamics of w is linear with concentrated coefficients).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.integrate import quad
from scipy.special import erf, ndtr

from ..core.gaussian import gauss_hermite_mean, truncated_gauss_mean
from ..linear.ode import field_moments, loss_derivative, resolve_backend
from ..linear.params import ParameterError, Params, eps_quadrature
from .mixture import COMMUTE_TOL, PSD_TOL, Mixture, checked_vector

__all__ = ["Mixture", "SpectralState", "FullState", "initial_state", "order_parameters", "rhs", "centred_moment",
           "cluster_averages", "errors", "errors_from_order_parameters", "lp_errors", "pixel_law", "PSD_TOL", "COMMUTE_TOL"]

_SQRT_PI = math.sqrt(math.pi)


# ----------------------------------------------------------------------------------------------------
# State
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SpectralState:
    """m = U^T E[w] and c = diag(U^T Cov(w) U) in the shared eigenbasis, and b."""

    m: np.ndarray
    c: np.ndarray
    b: float


@dataclass(frozen=True, eq=False)
class FullState:
    """m = E[w] and C = Cov(w) in the pixel basis, and b."""

    m: np.ndarray
    C: np.ndarray
    b: float


def initial_state(mix: Mixture, *, w0=None, m0=None, b0: float = 0.0):
    """The state at alpha = 0.

    ``w0`` (pixel basis) a given initial weight: m = w0/|w0|, C = 0.  Otherwise an isotropic random start
    with mean ``m0`` (pixel basis, default 0): C = (1 - |m0|^2) I/N, so that E|w|^2 = 1.
    """
    N = mix.N
    if w0 is not None:
        w = checked_vector("w0", w0, N)
        nrm = float(np.linalg.norm(w))
        if nrm == 0:
            raise ParameterError("w0 must be non-zero")
        m = w / nrm
        C = None
    else:
        m = np.zeros(N) if m0 is None else checked_vector("m0", m0, N)
        r2 = float(m @ m)
        if r2 > 1 + 1e-12:
            raise ParameterError(f"|m0| must be <= 1, got {math.sqrt(r2)}")
        C = max(1.0 - r2, 0.0) / N
    me = mix.from_pixel(m)
    if mix.spectral:
        c = np.zeros(N) if C is None else np.full(N, C)
        return SpectralState(me, c, float(b0))
    return FullState(me.copy(), np.zeros((N, N)) if C is None else C * np.eye(N), float(b0))


def order_parameters(state, mix: Mixture) -> tuple[np.ndarray, np.ndarray]:
    """(M, Q): M_tau = mu_tau.m, Q_tau = m'Sigma_tau m + tr(Sigma_tau C), tau = +1, -1."""
    M = mix.mu @ state.m
    if isinstance(state, SpectralState):
        Q = mix.lam @ (state.m * state.m + state.c)
    else:
        Q = np.array([state.m @ S @ state.m + np.sum(S * state.C) for S in mix.cov])
    return M, Q


# ----------------------------------------------------------------------------------------------------
# Gaussian averages over the local field
# ----------------------------------------------------------------------------------------------------
def centred_moment(mu_x, var, tau, *, erf_scale=1.0, loss="quadratic", non_robust_only=False, backend="auto"):
    """<delta(x) (x - mu_x)> for x ~ N(mu_x, var) (with 1{tau x < 0} when non_robust_only).

    Closed form (quadratic loss, erf output): with y = x/s ~ N(mu, V), the tilt exp(-y^2) N(y; mu, V) =
    c1 N(y; mu1, V1) of :mod:`theory.gaussian` and E[y erf(y)] = m erf(m/sqrt(1+2v)) + v (2/sqrt pi)
    exp(-m^2/(1+2v))/sqrt(1+2v) for y ~ N(m, v),
        <delta (x - mu_x)> = k s c1 [(mu1 - mu)(erf(mu1/r) - tau) + V1 (2/sqrt pi) exp(-mu1^2/r^2)/r],
    r = sqrt(1 + 2 V1), k = 2/(s sqrt pi).  Otherwise by the quadratures of :mod:`theory.gaussian`.
    """
    backend = resolve_backend(backend, loss, non_robust_only)
    mu_x = np.asarray(mu_x, dtype=float)
    var = np.asarray(var, dtype=float)
    s = erf_scale
    if backend == "closed":
        mu, V = mu_x / s, var / (s * s)
        d1 = 1.0 + 2.0 * V
        c1 = np.exp(-mu * mu / d1) / np.sqrt(d1)
        mu1, V1 = mu / d1, V / d1
        r = np.sqrt(1.0 + 2.0 * V1)
        k = 2.0 / (s * _SQRT_PI)
        return k * s * c1 * ((mu1 - mu) * (erf(mu1 / r) - tau) + V1 * (2.0 / _SQRT_PI) * np.exp(-mu1 * mu1 / (r * r)) / r)

    if backend == "hermite":
        return gauss_hermite_mean(lambda x: loss_derivative(x, tau, loss, s) * (x - mu_x[..., None]), mu_x, var)
    lower, upper = (-np.inf, np.inf)
    if non_robust_only:
        lower, upper = (-np.inf, 0.0) if tau > 0 else (0.0, np.inf)
    mb, vb = np.broadcast_arrays(mu_x, var)
    return truncated_gauss_mean(lambda x: loss_derivative(x, tau, loss, s) * (x - mb[..., None]), mb, vb, lower, upper)


def cluster_averages(M, Q, b, params: Params, backend: str = "auto", eps_nodes: int = 32):
    """(<delta>, <delta (h - M)>, <delta^2>) for tau = +1, -1 (arrays of 2), averaged over the budget law;
    x ~ N(M_tau - tau eps - b, Q_tau)."""
    p = params
    if p.eps_law == "fixed":
        nodes, weights = np.array([p.eps]), np.array([1.0])
    else:
        nodes, weights = eps_quadrature(p.eps_law, p.eps, eps_nodes)
    out = np.zeros((3, 2))
    for k, tau in enumerate((1.0, -1.0)):
        mu_x = M[k] - tau * nodes - b
        kw = dict(erf_scale=p.erf_scale, loss=p.loss, non_robust_only=p.non_robust_only, backend=backend)
        m1, m2 = field_moments(mu_x, Q[k], tau, **kw)
        mc = centred_moment(mu_x, Q[k], tau, **kw)
        out[0, k] = weights @ np.broadcast_to(m1, nodes.shape)
        out[1, k] = weights @ np.broadcast_to(mc, nodes.shape)
        out[2, k] = weights @ np.broadcast_to(m2, nodes.shape)
    return out[0], out[1], out[2]


# ----------------------------------------------------------------------------------------------------
# Right-hand side
# ----------------------------------------------------------------------------------------------------
def coefficients(state, mix: Mixture, params: Params, *, noise: bool = True, backend: str = "auto"):
    """The scalars of the module docstring: (P, d1, gamma, g, dnoise, db) with P the priors, d1 = <delta>,
    gamma_tau = <delta (h - M)>/Q, g, dnoise_tau = (eta_w^2/N) P_tau <delta^2>_tau (0 if not ``noise``),
    db = db/dalpha."""
    p = params
    M, Q = order_parameters(state, mix)
    if np.any(Q <= 0):
        raise ParameterError(f"the field variance w'Sigma w must be > 0, got {Q} (a degenerate covariance?)")
    d1, dc, d2 = cluster_averages(M, Q, state.b, p, backend)
    P = np.array([p.prior, 1.0 - p.prior])
    eta = p.eta_w
    gamma = dc / Q
    g = eta * P @ (dc + M * d1) - 0.5 * eta**2 * P @ (mix.vbar * d2)
    dnoise = (eta**2 / mix.N) * P * d2 if noise else np.zeros(2)
    return P, d1, gamma, g, dnoise, p.eta_b * float(P @ d1)


def rhs(state, mix: Mixture, params: Params, *, noise: bool = True, backend: str = "auto"):
    """(dm/dalpha, dC/dalpha (or dc/dalpha), db/dalpha) at ``state``; ``noise=False`` drops D (a wrong variant)."""
    P, d1, gamma, g, dnoise, db = coefficients(state, mix, params, noise=noise, backend=backend)
    eta = params.eta_w
    f = -eta * (P * d1) @ mix.mu
    if isinstance(state, SpectralState):
        A = g - eta * (P * gamma) @ mix.lam  # diagonal of A in the eigenbasis
        return f + A * state.m, 2.0 * A * state.c + dnoise @ mix.lam, db
    a = -eta * P * gamma
    if mix.first_diagonal:  # cov[0] diagonal: a row scaling instead of a matrix product
        d0 = np.diagonal(mix.cov[0])
        Am = g * state.m + a[0] * (d0 * state.m) + a[1] * (mix.cov[1] @ state.m)
        AC = g * state.C + a[0] * (d0[:, None] * state.C) + a[1] * (mix.cov[1] @ state.C)
    else:
        Am = g * state.m + a[0] * (mix.cov[0] @ state.m) + a[1] * (mix.cov[1] @ state.m)
        AC = g * state.C + a[0] * (mix.cov[0] @ state.C) + a[1] * (mix.cov[1] @ state.C)
    dC = AC + AC.T + dnoise[0] * mix.cov[0] + dnoise[1] * mix.cov[1]
    return f + Am, dC, db


# ----------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------
def errors_from_order_parameters(M, Q, b, prior: float, eps_test=0.0):
    """(E, S(eps_test)) of sign(w.xi - b) from the order parameters: M[k] = w.mu_tau, Q[k] = w'Sigma_tau w for
    tau = +1, -1 (k = 0, 1) and the bias b, each of any shape (e.g. one value per replica):

        E = sum_tau P_tau Phi(-tau (M_tau - b) / sqrt(Q_tau)),   S = sum_tau P_tau Phi((eps_test - tau (M_tau - b)) / sqrt(Q_tau)).

    The one formula of the theory, the Monte Carlo (:mod:`simulate.structured`) and the fitted mixtures."""
    P = (prior, 1.0 - prior)
    eps = np.asarray(eps_test, dtype=float)
    E = sum(P[k] * ndtr(-tau * (M[k] - b) / np.sqrt(Q[k])) for k, tau in enumerate((1.0, -1.0)))
    S = sum(P[k] * ndtr((eps - tau * (M[k] - b)) / np.sqrt(Q[k])) for k, tau in enumerate((1.0, -1.0)))
    return E, S


def errors(state, mix: Mixture, params: Params, eps_test=0.0):
    """(E, S(eps_test), M, Q): clean and l_2 adversarial error of sign(w.xi - b) (module docstring)."""
    M, Q = order_parameters(state, mix)
    E, S = errors_from_order_parameters(M, Q, state.b, params.prior, eps_test)
    return float(E), S, M, Q


def pixel_law(state, mix: Mixture) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of each component of w in the pixel basis (w_i ~ N(mean_i, var_i))."""
    if isinstance(state, SpectralState):
        if mix.U is None:
            return state.m.copy(), state.c.copy()
        return mix.U @ state.m, (mix.U * mix.U) @ state.c
    if mix.U is None:
        return state.m.copy(), np.diag(state.C).copy()
    return mix.U @ state.m, np.sum((mix.U @ state.C) * mix.U, axis=1)


def _folded_mean(mu, sd):
    """E|mu + sd g| for g ~ N(0, 1), elementwise (sd = 0 gives |mu|)."""
    mu, sd = np.broadcast_arrays(np.asarray(mu, float), np.asarray(sd, float))
    out = np.abs(mu).astype(float)
    pos = sd > 0
    z = mu[pos] / sd[pos]
    out[pos] = sd[pos] * math.sqrt(2.0 / math.pi) * np.exp(-0.5 * z * z) + mu[pos] * (1.0 - 2.0 * ndtr(-z))
    return out


def expected_norms(state, mix: Mixture) -> tuple[float, float]:
    """(E|w|_1, E|w|_inf) with w_i ~ N(mean_i, var_i) independent (pixel basis).

    E|w|_inf = int_0^inf (1 - prod_i P(|w_i| <= t)) dt by adaptive quadrature; the components are
    treated as independent (their correlations are O(1/N) off the diagonal when C starts diagonal).
    """
    mean, var = pixel_law(state, mix)
    sd = np.sqrt(np.clip(var, 0.0, None))
    l1 = float(np.sum(_folded_mean(mean, sd)))

    def survival(t):
        with np.errstate(divide="ignore"):
            pin = np.where(sd > 0, ndtr((t - mean) / np.where(sd > 0, sd, 1)) - ndtr((-t - mean) / np.where(sd > 0, sd, 1)),
                           (np.abs(mean) <= t).astype(float))
        return 1.0 - float(np.exp(np.sum(np.log(np.clip(pin, 1e-300, 1.0)))))

    top = float(np.max(np.abs(mean) + 12.0 * sd))
    linf = quad(survival, 0.0, top, limit=400, epsabs=1e-12, epsrel=1e-9)[0]
    return l1, float(linf)


def lp_errors(state, mix: Mixture, params: Params, *, eps_l2=0.0, eps_inf=0.0, eps_1=0.0) -> dict[str, float]:
    """Clean, l_2, l_inf and l_1 adversarial errors: an l_p budget eps lowers the margin by eps |w|_q
    (q dual to p), with |w|_1 and |w|_inf replaced by their expectations under the law of w."""
    l1, linf = expected_norms(state, mix)
    E, S2, _, _ = errors(state, mix, params, eps_l2)
    _, Sinf, _, _ = errors(state, mix, params, eps_inf * l1)
    _, S1, _, _ = errors(state, mix, params, eps_1 * linf)
    return {"E": E, "S_l2": float(S2), "S_linf": float(Sinf), "S_l1": float(S1), "norm_l1": l1, "norm_linf": linf}


# ----------------------------------------------------------------------------------------------------
# l_inf adversarial training (experimental: a Gaussian closure of the law of w's components)
# ----------------------------------------------------------------------------------------------------
def rhs_linf(state, mix: Mixture, params: Params, *, noise: bool = True, backend: str = "auto"):
    """(dm, dc, db)/dalpha for l_inf adversarial training xi - tau (eps_hat/sqrt N) sign(w), diagonal covariance.

    The step w~ = w - c (xi - tau eps sign(w)) leaves the span of w; to order 1/N
        w' - w = -c xi + c tau eps sign(w) + c (h - tau eps |w|_1) w - (c^2 N/2) vbar w,
    with the field x = h - tau eps_hat L - b, L = |w|_1/sqrt N.  The drift has the extra term
    kappa E[sign w_i]/sqrt N, kappa = eta_w eps_hat sum_tau P_tau tau <delta>_tau, and g loses
    eta_w eps_hat L sum_tau P_tau tau <delta>_tau; the variance gains 2 kappa (E|w_i| - m_i E sign w_i)/sqrt N.
    E sign w_i and E|w_i| are taken for w_i ~ N(m_i, c_i): a closure, exact only while the law of w_i stays
    Gaussian (the sign term is not linear in w_i); |w|^2 = 1 is conserved exactly.  Needs the pixel basis to be
    the eigenbasis (``U`` None), because sign acts coordinate-wise.  ``params.eps`` is eps_hat.
    """
    if not (isinstance(state, SpectralState) and mix.spectral and mix.U is None):
        raise ParameterError("l_inf training needs a diagonal covariance in the pixel basis (spectral, U = None)")
    if params.eps_law != "fixed":
        raise ParameterError("l_inf training supports eps_law='fixed' only")
    p = params
    N = mix.N
    sN = math.sqrt(N)
    M, Q = order_parameters(state, mix)
    sd = np.sqrt(np.clip(state.c, 0.0, None))
    a = _folded_mean(state.m, sd)
    with np.errstate(divide="ignore", invalid="ignore"):
        sig = np.where(sd > 0, erf(state.m / (math.sqrt(2.0) * np.where(sd > 0, sd, 1.0))), np.sign(state.m))
    L = float(a.sum()) / sN
    eff = p.replace(eps=p.eps * L)
    d1, dc, d2 = cluster_averages(M, Q, state.b, eff, backend)
    P = np.array([p.prior, 1.0 - p.prior])
    tau = np.array([1.0, -1.0])
    eta = p.eta_w
    gamma = dc / Q
    kappa = eta * p.eps * float(P @ (tau * d1))
    g = eta * P @ (dc + M * d1) - kappa * L - 0.5 * eta**2 * P @ (mix.vbar * d2)
    dnoise = (eta**2 / N) * P * d2 if noise else np.zeros(2)
    f = -eta * (P * d1) @ mix.mu
    A = g - eta * (P * gamma) @ mix.lam
    dm = f + A * state.m + kappa * sig / sN
    dc_ = 2.0 * A * state.c + 2.0 * kappa * (a - state.m * sig) / sN + dnoise @ mix.lam
    return dm, dc_, p.eta_b * float(P @ d1)
