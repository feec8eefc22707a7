"""The data law of the structured family: a two-class Gaussian mixture with any means and covariances.

``Mixture`` holds the class means and the covariances in a shared eigenbasis (or their eigenvalues in the
pixel basis), checked on construction: finite, symmetric, positive semi-definite, commuting when the spectral
path is asked for. ``checked_vector`` is the input check shared with the state constructors of
:mod:`theory.structured.ode`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..linear.params import ParameterError, Params

__all__ = ["Mixture", "checked_vector", "PSD_TOL", "COMMUTE_TOL"]

#: relative tolerances of the input checks: asymmetry and negative eigenvalues up to PSD_TOL * max|eig|
#: are rounding (clipped to 0), beyond that the matrix is rejected; commuting covariances within COMMUTE_TOL
PSD_TOL = 1e-9
COMMUTE_TOL = 1e-9

# ----------------------------------------------------------------------------------------------------
# The data law
# ----------------------------------------------------------------------------------------------------
def checked_vector(name: str, x, N: int | None = None) -> np.ndarray:
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
        lam_p = checked_vector("lam_plus", lam_plus)
        N = lam_p.size
        lam_m = lam_p if lam_minus is None else checked_vector("lam_minus", lam_minus, N)
        if np.any(lam_p < 0) or np.any(lam_m < 0):
            raise ParameterError("lam_plus and lam_minus (covariance eigenvalues) must be >= 0")
        mu = np.stack([checked_vector("mu_plus", mu_plus, N), checked_vector("mu_minus", mu_minus, N)])
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
        mu_p = checked_vector("mu_plus", mu_plus)
        N = mu_p.size
        mu_m = checked_vector("mu_minus", mu_minus, N)
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
        B = checked_vector("B", B, N)
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
