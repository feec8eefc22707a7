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

__all__ = ["Mixture", "SpectralState", "FullState", "initial_state", "order_parameters", "rhs", "centred_moment",
           "cluster_averages", "errors", "errors_from_order_parameters", "lp_errors", "pixel_law", "PSD_TOL", "COMMUTE_TOL"]

_SQRT_PI = math.sqrt(math.pi)
#: relative tolerances of the input checks: asymmetry and negative eigenvalues up to PSD_TOL * max|eig|
#: are rounding (clipped to 0), beyond that the matrix is rejected; commuting covariances within COMMUTE_TOL
PSD_TOL = 1e-9
COMMUTE_TOL = 1e-9


# ----------------------------------------------------------------------------------------------------
# The data law
# ----------------------------------------------------------------------------------------------------
def _vector(name: str, x, N: int | None = None) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1 or (N is not None and a.shape != (N,)):
        want = "a vector" if N is None else f"a vector of length N = {N}"
        raise ParameterError(f"{name} must be {want}, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ParameterError(f"{name} must be finite")
    return a


def _psd_eigh(name: str, S, N: int) -> tuple[np.ndarray, np.ndarray]:
    S = np.asarray(S, dtype=float)
    if S.shape != (N, N):
        raise ParameterError(f"{name} must be an N x N matrix with N = {N}, got shape {S.shape}")
    if not np.all(np.isfinite(S)):
        raise ParameterError(f"{name} must be finite")
    scale = max(float(np.max(np.abs(S))), 1e-300)
    if float(np.max(np.abs(S - S.T))) > PSD_TOL * scale:
        raise ParameterError(f"{name} must be symmetric (max |S - S^T| = {np.max(np.abs(S - S.T)):.3g})")
    lam, U = np.linalg.eigh(0.5 * (S + S.T))
    if lam[0] < -PSD_TOL * max(abs(lam[-1]), 1e-300) * N:
        raise ParameterError(f"{name} must be positive semi-definite (smallest eigenvalue {lam[0]:.3g})")
    return np.clip(lam, 0.0, None), U


@dataclass(frozen=True, eq=False)
class Mixture:
    """Two Gaussian classes: tau = +1 ~ N(mu[0], Sigma_+), tau = -1 ~ N(mu[1], Sigma_-).

    Either shared-eigenbasis form (``lam`` (2, N) eigenvalues in the basis ``U`` (N, N), None for the
    identity; ``mu`` then holds the means in that basis) or full form (``cov`` (2, N, N) and ``mu`` in the
    basis U, None for the pixel basis; :meth:`from_covariances` takes U = the eigenbasis of Sigma_+, so that
    cov[0] is diagonal and one product per step of the solver is saved).  Build with :meth:`from_spectrum` or :meth:`from_covariances`, which validate shapes,
    symmetry and positive semi-definiteness (a :class:`ParameterError` naming the argument otherwise).
    """

    mu: np.ndarray
    lam: np.ndarray | None = None
    U: np.ndarray | None = None
    cov: np.ndarray | None = None

    @property
    def N(self) -> int:
        return int(self.mu.shape[1])

    @property
    def spectral(self) -> bool:
        return self.lam is not None

    @property
    def vbar(self) -> np.ndarray:
        """tr(Sigma_tau)/N for tau = +1, -1."""
        if self.spectral:
            return self.lam.mean(axis=1)
        return np.trace(self.cov, axis1=1, axis2=2) / self.N

    @property
    def first_diagonal(self) -> bool:
        """Full form whose cov[0] is diagonal (the basis U is Sigma_+'s eigenbasis)."""
        return not self.spectral and self.U is not None

    def mu_pixel(self) -> np.ndarray:
        return self.mu if self.U is None else self.mu @ self.U.T

    def to_pixel(self, v: np.ndarray) -> np.ndarray:
        """A vector of the state basis in the pixel basis."""
        return v if self.U is None else self.U @ v

    def from_pixel(self, v: np.ndarray) -> np.ndarray:
        return v if self.U is None else self.U.T @ v

    def covariance(self, k: int) -> np.ndarray:
        """Sigma of class k (0: tau=+1, 1: tau=-1) in the pixel basis."""
        if not self.spectral:
            return self.cov[k] if self.U is None else self.U @ self.cov[k] @ self.U.T
        if self.U is None:
            return np.diag(self.lam[k])
        return (self.U * self.lam[k]) @ self.U.T

    @classmethod
    def from_spectrum(cls, mu_plus, mu_minus, lam_plus, lam_minus=None, U=None, *, basis: str = "eigen"):
        """Covariances U diag(lam_tau) U^T.  ``basis``: 'eigen' if the means are given in the eigenbasis,
        'pixel' if in the pixel basis (then rotated by U^T)."""
        lam_p = _vector("lam_plus", lam_plus)
        N = lam_p.size
        lam_m = lam_p if lam_minus is None else _vector("lam_minus", lam_minus, N)
        if np.any(lam_p < 0) or np.any(lam_m < 0):
            raise ParameterError("lam_plus and lam_minus (covariance eigenvalues) must be >= 0")
        mu = np.stack([_vector("mu_plus", mu_plus, N), _vector("mu_minus", mu_minus, N)])
        if U is not None:
            U = np.asarray(U, dtype=float)
            if U.shape != (N, N) or not np.all(np.isfinite(U)):
                raise ParameterError(f"U must be a finite N x N matrix with N = {N}, got shape {U.shape}")
            if float(np.max(np.abs(U.T @ U - np.eye(N)))) > 1e-8:
                raise ParameterError("U must be orthogonal (U^T U = I)")
            if basis == "pixel":
                mu = mu @ U
        if basis not in ("eigen", "pixel"):
            raise ParameterError(f"basis must be 'eigen' or 'pixel', got {basis!r}")
        return cls(mu=mu, lam=np.stack([lam_p, lam_m]), U=U)

    @classmethod
    def from_covariances(cls, mu_plus, mu_minus, Sigma_plus, Sigma_minus=None, *, path: str = "auto"):
        """Class means and covariances in the pixel basis.  ``path``: 'auto' (the shared-eigenbasis form if
        Sigma_- is None, equal to Sigma_+ or commuting with it, else the full form), 'spectral' or 'full'."""
        mu_p = _vector("mu_plus", mu_plus)
        N = mu_p.size
        mu_m = _vector("mu_minus", mu_minus, N)
        lam_p, U_p = _psd_eigh("Sigma_plus", Sigma_plus, N)
        if path not in ("auto", "spectral", "full"):
            raise ParameterError(f"path must be 'auto', 'spectral' or 'full', got {path!r}")
        Sp = np.asarray(Sigma_plus, dtype=float)
        if Sigma_minus is None:
            Sm = Sp
            lam_m = lam_p
        else:
            lam_m_own, _ = _psd_eigh("Sigma_minus", Sigma_minus, N)
            Sm = np.asarray(Sigma_minus, dtype=float)
            lam_m = None
        if path == "full":
            return cls._full(mu_p, mu_m, lam_p, U_p, Sm)
        if lam_m is None:
            scale = max(float(np.max(np.abs(Sp))), float(np.max(np.abs(Sm))), 1e-300)
            if np.array_equal(Sp, Sm):
                lam_m = lam_p
            else:
                rot = U_p.T @ Sm @ U_p  # diagonal where Sigma_+ is non-degenerate iff they commute
                comm = float(np.max(np.abs(Sp @ Sm - Sm @ Sp))) / scale**2
                if comm > COMMUTE_TOL:
                    if path == "spectral":
                        raise ParameterError(f"Sigma_plus and Sigma_minus do not commute (|[S+, S-]| = {comm:.3g} "
                                             f"relative): use path='full'")
                    return cls._full(mu_p, mu_m, lam_p, U_p, Sm)
                # a common eigenbasis: diagonalise Sigma_- within each eigenspace of Sigma_+
                lam_mm, U_p = _common_basis(lam_p, U_p, rot)
                lam_m = np.clip(lam_mm, 0.0, None)
                del lam_m_own
        mu = np.stack([mu_p, mu_m]) @ U_p
        return cls(mu=mu, lam=np.stack([lam_p, lam_m]), U=U_p)

    @classmethod
    def _full(cls, mu_p, mu_m, lam_p, U_p, Sm):
        """Full form in the eigenbasis of Sigma_+ (cov[0] = diag(lam_p), cov[1] = U_p^T Sigma_- U_p)."""
        rot = U_p.T @ (0.5 * (Sm + Sm.T)) @ U_p
        return cls(mu=np.stack([mu_p, mu_m]) @ U_p, cov=np.stack([np.diag(lam_p), 0.5 * (rot + rot.T)]), U=U_p)

    @classmethod
    def isotropic(cls, params: Params, N: int, B=None):
        """mu_tau = tau (rho/2) B, Sigma_tau = v_tau I (the model of :mod:`theory.params`); B = e_1 by default."""
        if B is None:
            B = np.zeros(N)
            B[0] = 1.0
        B = _vector("B", B, N)
        if abs(np.linalg.norm(B) - 1.0) > 1e-12:
            raise ParameterError("B must be a unit vector")
        return cls(mu=np.stack([0.5 * params.rho * B, -0.5 * params.rho * B]),
                   lam=np.stack([np.full(N, params.v1), np.full(N, params.v2)]), U=None)

    def isotropised(self) -> "Mixture":
        """The same means with Sigma_tau replaced by vbar_tau I (the isotropic approximation, for contrast)."""
        mu = self.mu_pixel()
        N = self.N
        vb = self.vbar
        return Mixture(mu=mu, lam=np.stack([np.full(N, vb[0]), np.full(N, vb[1])]), U=None)


def _common_basis(lam_p, U_p, rot):
    """Eigenvalues of Sigma_- in a basis that diagonalises both (Sigma_+ eigenvalues lam_p, basis U_p;
    rot = U_p^T Sigma_- U_p is block diagonal on the eigenspaces of Sigma_+ when they commute)."""
    N = lam_p.size
    lam_m = np.empty(N)
    U = U_p.copy()
    tol = 1e-10 * max(abs(lam_p[-1]), 1e-300)
    i = 0
    while i < N:
        j = i + 1
        while j < N and lam_p[j] - lam_p[i] <= tol:
            j += 1
        block = 0.5 * (rot[i:j, i:j] + rot[i:j, i:j].T)
        lb, V = np.linalg.eigh(block)
        lam_m[i:j] = lb
        U[:, i:j] = U_p[:, i:j] @ V
        i = j
    return lam_m, U


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
        w = _vector("w0", w0, N)
        nrm = float(np.linalg.norm(w))
        if nrm == 0:
            raise ParameterError("w0 must be non-zero")
        m = w / nrm
        C = None
    else:
        m = np.zeros(N) if m0 is None else _vector("m0", m0, N)
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
