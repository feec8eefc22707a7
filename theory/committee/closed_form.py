"""The drift's data averages without the attack in closed form (the rule "exact").

Given the cluster c the fields are Gaussian, lambda ~ N(mu, C) with mu = R m_c - b and C = v_c Q.  Without the
attack every average of :func:`theory.committee.averages` is a sum of terms

    E[ prod_{s in S} erf'(lambda_s) prod_{e in E} erf(lambda_e) (1 or lambda) ],   |S| <= 2, |E| <= 2,

and each has a closed form:

- a factor erf'(lambda_s) = (2/sqrt(pi)) exp(-lambda_s^2) is absorbed into the Gaussian: reweighting N(mu, C) by
  exp(-x_s^2) is the Gaussian update by an observation x_s = 0 with noise variance 1/2,
      Z  = (2/sqrt(pi)) exp(-mu_s^2/(1 + 2 C_ss)) / sqrt(1 + 2 C_ss),
      mu -> mu - 2 C[:, s] mu_s/(1 + 2 C_ss),   C -> C - 2 C[:, s] C[s, :]/(1 + 2 C_ss)
  (several factors, the same index twice included, are absorbed one after the other);
- E[erf(x)] = erf(m/sqrt(1 + 2 s^2)) for x ~ N(m, s^2);
- E[erf(x) erf(y)] = 4 Phi2(h, k; r) - E[erf x] - E[erf y] - 1 with h = sqrt(2) m_x/sqrt(1 + 2 C_xx),
  k likewise, r = 2 C_xy/sqrt((1 + 2 C_xx)(1 + 2 C_yy)) (|r| < 1 always), Phi2 the bivariate normal distribution
  function by Owen's T (scipy.special.owens_t):
      Phi2(h, k; r) = Phi(h)/2 + Phi(k)/2 - T(h, (k - r h)/(h s)) - T(k, (h - r k)/(k s)) - beta,  s = sqrt(1 - r^2),
  beta = 0 if h k > 0 or (h k = 0 and h + k >= 0), 1/2 otherwise; Phi2(0, k; r) = Phi(k)/2 - T(k, -r/s);
- a linear factor by Stein's lemma, E[lambda f] = mu E[f] + C E[grad f], so E[lambda erf(lambda_j)] =
  mu E[erf(lambda_j)] + C[:, j] E[erf'(lambda_j)].

References: the bivariate normal by Owen's T, D. B. Owen, Ann. Math. Statist. 27 (1956) 1075, eq. (3.1)-(3.4);
the erf averages as in Saad & Solla, Phys. Rev. E 52 (1995) 4225 (there zero-mean fields), here with means.

The result equals the quadrature's limit, so its error is rounding only: :func:`exact_averages` also returns a
bound of it, EXACT_ROUNDING times the sum of the absolute values of the terms of each entry (cancellation is what
rounding amplifies); tests/test_committee_closed_form.py holds the Gauss-Hermite rules to it.

Pure mathematics: numpy and scipy.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf, ndtr, owens_t

from .params import CommitteeParams, State
from .local_fields import sqrt_gram

__all__ = ["exact_averages", "expect_erf", "expect_erf_erf", "bivariate_normal_cdf", "EXACT_ROUNDING"]

TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
#: rounding bound per entry: this times the sum of |terms| (about 2^-52 times the number of rounded operations on
#: the way, a few tens, and the relative accuracy of scipy's erf and owens_t, a few ulp)
EXACT_ROUNDING = 1e-14


def bivariate_normal_cdf(h, k, r):
    """Phi2(h, k; r) = P(X <= h, Y <= k) for standard normals of correlation r, |r| < 1 (Owen 1956, eq. 3.1-3.4)."""
    h, k, r = np.broadcast_arrays(np.asarray(h, float), np.asarray(k, float), np.asarray(r, float))
    s = np.sqrt(1.0 - r * r)
    hz, kz = h == 0.0, k == 0.0
    hs = np.where(hz, 1.0, h)
    ks = np.where(kz, 1.0, k)
    general = (0.5 * ndtr(h) + 0.5 * ndtr(k) - owens_t(h, (k - r * h) / (hs * s)) - owens_t(k, (h - r * k) / (ks * s))
               - np.where((h * k > 0) | ((h * k == 0) & (h + k >= 0)), 0.0, 0.5))
    at_h0 = 0.5 * ndtr(k) - owens_t(k, -r / s)  # h = 0 (k = 0 included)
    at_k0 = 0.5 * ndtr(h) - owens_t(h, -r / s)
    return np.where(hz, at_h0, np.where(kz, at_k0, general))


def expect_erf(m, var):
    """E[erf(x)], x ~ N(m, var)."""
    return erf(m / np.sqrt(1.0 + 2.0 * var))


def expect_erf_erf(mx, my, cxx, cyy, cxy):
    """E[erf(x) erf(y)] for (x, y) Gaussian with means mx, my and covariances cxx, cyy, cxy (broadcast)."""
    sx, sy = np.sqrt(1.0 + 2.0 * cxx), np.sqrt(1.0 + 2.0 * cyy)
    phi2 = bivariate_normal_cdf(math.sqrt(2.0) * mx / sx, math.sqrt(2.0) * my / sy, 2.0 * cxy / (sx * sy))
    return 4.0 * phi2 - erf(mx / sx) - erf(my / sy) - 1.0


def _absorb(mu, C, s):
    """Absorb erf'(lambda_s) into N(mu, C): mu (..., K), C (..., K, K), s the absorbed index per batch entry
    (broadcast to the batch shape ...).  Returns (Z, mu', C') with Z = E[erf'(lambda_s)]."""
    idx = np.broadcast_to(np.asarray(s), mu.shape[:-1])[..., None]
    css = np.take_along_axis(np.diagonal(C, axis1=-2, axis2=-1), idx, -1)[..., 0]
    ms = np.take_along_axis(mu, idx, -1)[..., 0]
    col = np.take_along_axis(C, np.broadcast_to(idx[..., None], C.shape[:-1] + (1,)), -1)[..., 0]  # C[..., :, s]
    d = 1.0 + 2.0 * css
    Z = TWO_OVER_SQRT_PI * np.exp(-ms * ms / d) / np.sqrt(d)
    mu2 = mu - 2.0 * col * (ms / d)[..., None]
    C2 = C - 2.0 * col[..., :, None] * col[..., None, :] / d[..., None, None]
    return Z, mu2, C2


def _pairwise(mu, C):
    """E[erf(lambda_i) erf(lambda_j)] (..., K, K) under N(mu, C) (..., K), (..., K, K)."""
    d = np.diagonal(C, axis1=-2, axis2=-1)
    return expect_erf_erf(mu[..., :, None], mu[..., None, :], d[..., :, None], d[..., None, :], C)


def exact_averages(state: State, p: CommitteeParams):
    """The averages of :func:`theory.committee.averages` without the attack (one block), in closed form, and a
    rounding bound of each: ((A, EU, EE, Eb, Ev), (the bounds, same shapes)), each of shape (1, ...)."""
    Q, R, b, v = state
    Q = 0.5 * (Q + Q.T)
    mix = p.mixture()
    K, D = R.shape
    _, P = sqrt_gram(Q)
    Qp = P.T @ P  # Q^+ (E[B.xi | lambda] = m_c + R^T Q^+ (lambda - mu))
    out = [np.zeros((K, D)), np.zeros((K, K)), np.zeros((K, K)), np.zeros(K), np.zeros(K)]
    mag = [np.zeros((K, D)), np.zeros((K, K)), np.zeros((K, K)), np.zeros(K), np.zeros(K)]
    ar = np.arange(K)
    for c in range(len(mix.priors)):
        pc, tau, var = mix.priors[c], float(mix.labels[c]), mix.variances[c]
        mu = mix.means[c] @ R.T - b
        C = var * Q
        # no factor erf': E[erf_j], E[erf_j erf_k]
        E1 = expect_erf(mu, np.diag(C))
        E2 = _pairwise(mu, C)
        # one factor erf'_k: Z_k, the moments after absorbing k (k on the first axis)
        Zk, muk, Ck = _absorb(np.broadcast_to(mu, (K, K)), np.broadcast_to(C, (K, K, K)), ar)
        E1k = expect_erf(muk, np.diagonal(Ck, axis1=-2, axis2=-1))  # (k, j): E^k[erf_j]
        # two factors erf'_k erf'_l: absorb l after k
        Zkl2, mukl, Ckl = _absorb(np.broadcast_to(muk[:, None], (K, K, K)), np.broadcast_to(Ck[:, None], (K, K, K, K)),
                                  ar[None, :])
        Zkl = Zk[:, None] * Zkl2  # E[erf'_k erf'_l]
        E1kl = expect_erf(mukl, np.diagonal(Ckl, axis1=-2, axis2=-1))  # (k, l, i)
        E2kl = _pairwise(mukl, Ckl)  # (k, l, i, j)
        # <(sigma - tau) erf'_k> and <(sigma - tau) erf'_k (lambda - mu)> (Stein after absorbing k)
        t_b = Zk[:, None] * E1k * v  # (k, j): v_j E[erf_j erf'_k]
        eb = t_b.sum(1) - tau * Zk
        lin = (Zk[:, None, None] * (muk - mu)[:, :, None] * E1k[:, None, :]  # (k, axis, j)
               + Ck * Zkl[:, None, :])  # C^k[:, j] E[erf'_k erf'_j]
        el = np.einsum("kaj,j->ka", lin, v) - tau * Zk[:, None] * (muk - mu)
        el_mag = np.einsum("kaj,j->ka", np.abs(lin), np.abs(v)) + abs(tau) * Zk[:, None] * np.abs(muk - mu)
        e_k = v * eb  # <e_k>
        e_lin = v[:, None] * el  # <e_k (lambda - mu)>
        # A = <e_k y>: y = m_c + R^T Q^+ (lambda - mu); EU = <e_k (lambda + b)>
        out[0] += pc * (np.outer(e_k, mix.means[c]) + e_lin @ Qp @ R)
        out[1] += pc * (e_lin + np.outer(e_k, mu + b))
        b_mag = np.abs(v) * (np.abs(t_b).sum(1) + abs(tau) * Zk)
        lin_mag = np.abs(v)[:, None] * el_mag
        mag[0] += pc * (np.outer(b_mag, np.abs(mix.means[c])) + lin_mag @ np.abs(Qp @ R))
        mag[1] += pc * (lin_mag + np.outer(b_mag, np.abs(mu + b)))
        # EE = v_c <e_k e_l> = v_c v_k v_l <(sigma - tau)^2 erf'_k erf'_l>
        t2 = Zkl[..., None, None] * E2kl * v[:, None] * v[None, :]
        t1 = -2.0 * tau * Zkl[..., None] * E1kl * v
        ee = t2.sum((-2, -1)) + t1.sum(-1) + tau * tau * Zkl
        ee_mag = np.abs(t2).sum((-2, -1)) + np.abs(t1).sum(-1) + tau * tau * Zkl
        out[2] += pc * var * np.outer(v, v) * ee
        mag[2] += pc * var * np.outer(np.abs(v), np.abs(v)) * ee_mag
        out[3] += pc * e_k
        mag[3] += pc * b_mag
        # Ev = <(sigma - tau) erf_k>
        t_v = E2 * v[:, None]  # (j, k): v_j E[erf_j erf_k]
        out[4] += pc * (t_v.sum(0) - tau * E1)
        mag[4] += pc * (np.abs(t_v).sum(0) + abs(tau) * np.abs(E1))
    return tuple(a[None] for a in out), tuple(EXACT_ROUNDING * a[None] for a in mag)
