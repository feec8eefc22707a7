"""Fit the two-class Gaussian mixture of theory.structured to labelled data (numpy only).

Inputs xi [n, N] (already standardised, e.g. by :class:`empirical.online.Standardizer`) with labels tau in
{+1, -1}.  The class means are the sample means; the covariance is

* ``pooled``:    one within-class covariance (each class centred by its own mean), shared by both classes;
  the theory then runs on the shared eigenbasis (2N + 1 numbers);
* ``per_class``: one covariance per class (the full N x N path when they do not commute).

Shrinkage (the sample covariance is singular when n <= N, and MNIST's constant border pixels make it
singular for any n):

* ``ledoit_wolf``: Sigma = (1 - s) S + s (tr S/N) I with the Ledoit-Wolf (2004) intensity
  s = min(beta2, delta2)/delta2, delta2 = |S - (tr S/N) I|_F^2/N and
  beta2 = (sum_k |x_k|^4/n - |S|_F^2)/(n N) for the centred rows x_k (S = X'X/n).  Written out here because
  scikit-learn is not a dependency; tests compare it with sklearn.covariance.ledoit_wolf when installed.
* ``ridge:X``: Sigma = S + X (tr S/N) I (a stated ridge, X >= 0);
* ``none``: S itself (zero-variance directions stay exactly zero: they get no noise in the theory either).

Too few images of a class (fewer than 2) or inputs that are not finite raise :class:`FitError` with one line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FitError", "ledoit_wolf", "shrink", "fit_mixture", "FittedMixture", "COVARIANCES"]

COVARIANCES = ("pooled", "per_class")


class FitError(ValueError):
    """Data that cannot be fitted (the message names the problem)."""


def ledoit_wolf(X: np.ndarray, centred: bool = True) -> tuple[np.ndarray, float]:
    """(Sigma_LW, intensity s) for the rows of X (centred already if ``centred``; else centred here)."""
    X = np.asarray(X, dtype=float)
    if not centred:
        X = X - X.mean(axis=0)
    n, N = X.shape
    S = X.T @ X / n
    mu = float(np.trace(S)) / N
    delta2 = float(np.sum((S - mu * np.eye(N)) ** 2)) / N
    if delta2 <= 0:
        return S, 0.0
    row4 = np.sum(np.sum(X * X, axis=1) ** 2)
    beta2 = max((row4 / n - float(np.sum(S * S))) / (n * N), 0.0)
    s = min(beta2, delta2) / delta2
    return (1.0 - s) * S + s * mu * np.eye(N), float(s)


def shrink(X: np.ndarray, shrinkage: str) -> tuple[np.ndarray, float]:
    """Covariance of the centred rows of X with the named shrinkage; returns (Sigma, intensity)."""
    n, N = X.shape
    if shrinkage == "ledoit_wolf":
        return ledoit_wolf(X)
    S = X.T @ X / n
    if shrinkage == "none":
        return S, 0.0
    if shrinkage.startswith("ridge:"):
        try:
            lam = float(shrinkage.split(":", 1)[1])
        except ValueError:
            raise FitError(f"shrinkage ridge:X needs a number X >= 0, got {shrinkage!r}") from None
        if not (math.isfinite(lam) and lam >= 0):
            raise FitError(f"shrinkage ridge:X needs a number X >= 0, got {shrinkage!r}")
        return S + lam * (np.trace(S) / N) * np.eye(N), lam
    raise FitError(f"shrinkage must be ledoit_wolf, ridge:X or none, got {shrinkage!r}")


@dataclass(frozen=True, eq=False)
class FittedMixture:
    """The fitted class means (2, N), covariances (2, N, N; equal rows when pooled), prior and diagnostics."""

    mu: np.ndarray
    cov: np.ndarray
    prior: float
    covariance: str
    shrinkage: str
    intensity: tuple[float, ...]
    n: tuple[int, int]

    def mixture(self, path: str = "auto"):
        """The :class:`theory.structured.Mixture` (pooled: shared eigenbasis)."""
        from theory.structured import Mixture

        if self.covariance == "pooled":
            return Mixture.from_covariances(self.mu[0], self.mu[1], self.cov[0], path="spectral" if path == "auto" else path)
        return Mixture.from_covariances(self.mu[0], self.mu[1], self.cov[0], self.cov[1], path=path)

    def summary(self) -> dict[str, Any]:
        ev = [np.linalg.eigvalsh(c) for c in self.cov]
        return {"prior": self.prior, "covariance": self.covariance, "shrinkage": self.shrinkage,
                "intensity": list(self.intensity), "n": list(self.n), "N": int(self.mu.shape[1]),
                "rho": float(np.linalg.norm(self.mu[0] - self.mu[1])),
                "vbar": [float(np.trace(c)) / c.shape[0] for c in self.cov],
                "top_eigenvalues": [e[::-1][:5].tolist() for e in ev],
                "zero_eigenvalues": [int(np.sum(e <= 1e-12 * e[-1])) for e in ev]}


def fit_mixture(xi, tau, covariance: str = "pooled", shrinkage: str = "ledoit_wolf") -> FittedMixture:
    """Fit (mu_+, mu_-, Sigma_+, Sigma_-) to xi [n, N], tau [n] in {+1, -1} (module docstring)."""
    xi = np.asarray(xi, dtype=float)
    tau = np.asarray(tau, dtype=float).ravel()
    if xi.ndim != 2 or tau.shape != (xi.shape[0],):
        raise FitError(f"xi must be [n, N] with one label per row, got shapes {xi.shape} and {tau.shape}")
    if not np.all(np.isfinite(xi)):
        raise FitError("xi must be finite")
    if not np.all(np.isin(tau, (1.0, -1.0))):
        raise FitError("labels tau must be +1 or -1")
    if covariance not in COVARIANCES:
        raise FitError(f"covariance must be one of {', '.join(COVARIANCES)}, got {covariance!r}")
    pos, neg = xi[tau > 0], xi[tau < 0]
    for name, part in (("tau=+1", pos), ("tau=-1", neg)):
        if part.shape[0] < 2:
            raise FitError(f"class {name} has {part.shape[0]} image(s); at least 2 are needed to fit a covariance")
    mu = np.stack([pos.mean(axis=0), neg.mean(axis=0)])
    if covariance == "pooled":
        X = np.concatenate([pos - mu[0], neg - mu[1]])
        S, s = shrink(X, shrinkage)
        cov = np.stack([S, S])
        intensity = (s,)
    else:
        S1, s1 = shrink(pos - mu[0], shrinkage)
        S2, s2 = shrink(neg - mu[1], shrinkage)
        cov = np.stack([S1, S2])
        intensity = (s1, s2)
    cov = 0.5 * (cov + np.transpose(cov, (0, 2, 1)))
    if not np.all(np.isfinite(cov)):
        raise FitError("the fitted covariance is not finite")
    return FittedMixture(mu, cov, float(np.mean(tau > 0)), covariance, shrinkage, intensity,
                         (int(pos.shape[0]), int(neg.shape[0])))
