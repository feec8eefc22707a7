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
    out = (0.5 * ndtr(h) + 0.5 * ndtr(k) - owens_t(h, (k - r * h) / (hs * s)) - owens_t(k, (h - r * k) / (ks * s))
           - np.where((h * k > 0) | ((h * k == 0) & (h + k >= 0)), 0.0, 0.5))
    if np.any(hz | kz):
        at_h0 = 0.5 * ndtr(k) - owens_t(k, -r / s)  # h = 0 (k = 0 included)
        at_k0 = 0.5 * ndtr(h) - owens_t(h, -r / s)
        out = np.where(hz, at_h0, np.where(kz, at_k0, out))
    return out


def expect_erf(m, var):
    """E[erf(x)], x ~ N(m, var)."""
    return erf(m / np.sqrt(1.0 + 2.0 * var))


def expect_erf_erf(mx, my, cxx, cyy, cxy):
    """E[erf(x) erf(y)] for (x, y) Gaussian with means mx, my and covariances cxx, cyy, cxy (broadcast)."""
    sx, sy = np.sqrt(1.0 + 2.0 * cxx), np.sqrt(1.0 + 2.0 * cyy)
    phi2 = bivariate_normal_cdf(math.sqrt(2.0) * mx / sx, math.sqrt(2.0) * my / sy, 2.0 * cxy / (sx * sy))
    return 4.0 * phi2 - erf(mx / sx) - erf(my / sy) - 1.0


def _absorb_each(mu, C):
    """Absorb erf'(lambda_s) into N(mu, C), for each s in turn: mu (..., K), C (..., K, K) -> Z (..., S),
    mu' (..., S, K), C' (..., S, K, K) with Z = E[erf'(lambda_s)] and N(mu', C') the reweighted Gaussian."""
    d = 1.0 + 2.0 * np.diagonal(C, axis1=-2, axis2=-1)  # (..., S)
    Z = TWO_OVER_SQRT_PI * np.exp(-mu * mu / d) / np.sqrt(d)
    mu2 = mu[..., None, :] - 2.0 * C * (mu / d)[..., :, None]  # row s of C is C[:, s] (C symmetric)
    C2 = C[..., None, :, :] - 2.0 * C[..., :, :, None] * C[..., :, None, :] / d[..., :, None, None]
    return Z, mu2, C2


def _pairwise(mu, C):
    """E[erf(lambda_i) erf(lambda_j)] (..., K, K) under N(mu, C) (..., K), (..., K, K)."""
    d = np.diagonal(C, axis1=-2, axis2=-1)
    return expect_erf_erf(mu[..., :, None], mu[..., None, :], d[..., :, None], d[..., None, :], C)


def exact_averages(state: State, p: CommitteeParams):
    """The averages of :func:`theory.committee.averages` without the attack (one block), in closed form, and a
    rounding bound of each: ((A, EU, EE, Eb, Ev), (the bounds, same shapes)), each of shape (1, ...).

    Every cluster at once: arrays carry the cluster on their first axis (c), then the absorbed indices (k, l)."""
    Q, R, b, v = state
    Q = 0.5 * (Q + Q.T)
    mix = p.mixture()
    K, D = R.shape
    _, P = sqrt_gram(Q)
    QpR = P.T @ P @ R  # Q^+ R (E[B.xi | lambda] = m_c + R^T Q^+ (lambda - mu))
    pc, tau, var = mix.priors, mix.labels.astype(float), mix.variances
    mu = mix.means @ R.T - b  # (c, K)
    C = var[:, None, None] * Q  # (c, K, K)
    # no factor erf': E[erf_j] (c, j), E[erf_j erf_k] (c, j, k)
    E1 = expect_erf(mu, np.diagonal(C, axis1=-2, axis2=-1))
    E2 = _pairwise(mu, C)
    # one factor erf'_k: Z_k and the moments after absorbing k (c, k, ...)
    Zk, muk, Ck = _absorb_each(mu, C)
    E1k = expect_erf(muk, np.diagonal(Ck, axis1=-2, axis2=-1))  # (c, k, j): E^k[erf_j]
    # two factors erf'_k erf'_l: absorb l after k (c, k, l, ...)
    Zkl2, mukl, Ckl = _absorb_each(muk, Ck)
    Zkl = Zk[..., None] * Zkl2  # E[erf'_k erf'_l]
    E1kl = expect_erf(mukl, np.diagonal(Ckl, axis1=-2, axis2=-1))  # (c, k, l, i)
    E2kl = _pairwise(mukl, Ckl)  # (c, k, l, i, j)
    t3 = tau[:, None]
    # <(sigma - tau) erf'_k> and <(sigma - tau) erf'_k (lambda - mu)> (Stein after absorbing k)
    t_b = Zk[..., None] * E1k * v  # (c, k, j): v_j E[erf_j erf'_k]
    eb = t_b.sum(-1) - t3 * Zk  # (c, k)
    dmu = muk - mu[:, None]  # (c, k, a)
    lin = Zk[..., None, None] * dmu[..., None] * E1k[:, :, None, :] + Ck * Zkl[:, :, None, :]  # (c, k, a, j)
    el = lin @ v - t3[..., None] * Zk[..., None] * dmu  # (c, k, a)
    el_mag = np.abs(lin) @ np.abs(v) + np.abs(t3[..., None]) * Zk[..., None] * np.abs(dmu)
    e_k = v * eb  # <e_k> (c, k)
    e_lin = v[:, None] * el  # <e_k (lambda - mu)> (c, k, a)
    b_mag = np.abs(v) * (np.abs(t_b).sum(-1) + np.abs(t3) * Zk)
    lin_mag = np.abs(v)[:, None] * el_mag
    # A = <e_k y>: y = m_c + R^T Q^+ (lambda - mu); EU = <e_k (lambda + b)>
    A = np.einsum("c,ck,cd->kd", pc, e_k, mix.means) + np.einsum("c,cka->ka", pc, e_lin) @ QpR
    A_mag = np.einsum("c,ck,cd->kd", pc, b_mag, np.abs(mix.means)) + np.einsum("c,cka->ka", pc, lin_mag) @ np.abs(QpR)
    EU = np.einsum("c,cka->ka", pc, e_lin) + np.einsum("c,ck,ca->ka", pc, e_k, mu + b)
    EU_mag = np.einsum("c,cka->ka", pc, lin_mag) + np.einsum("c,ck,ca->ka", pc, b_mag, np.abs(mu + b))
    # EE = v_c <e_k e_l> = v_c v_k v_l <(sigma - tau)^2 erf'_k erf'_l>
    t2 = Zkl[..., None, None] * E2kl * np.outer(v, v)
    t1 = -2.0 * tau[:, None, None, None] * Zkl[..., None] * E1kl * v
    ee = t2.sum((-2, -1)) + t1.sum(-1) + (tau * tau)[:, None, None] * Zkl
    ee_mag = np.abs(t2).sum((-2, -1)) + np.abs(t1).sum(-1) + (tau * tau)[:, None, None] * Zkl
    w2 = pc * var
    EE = np.outer(v, v) * np.einsum("c,ckl->kl", w2, ee)
    EE_mag = np.outer(np.abs(v), np.abs(v)) * np.einsum("c,ckl->kl", w2, ee_mag)
    Eb, Eb_mag = pc @ e_k, pc @ b_mag
    # Ev = <(sigma - tau) erf_k>
    t_v = E2 * v[:, None]  # (c, j, k): v_j E[erf_j erf_k]
    Ev = pc @ (t_v.sum(1) - t3 * E1)
    Ev_mag = pc @ (np.abs(t_v).sum(1) + np.abs(t3) * np.abs(E1))
    out = (A, EU, EE, Eb, Ev)
    mag = (A_mag, EU_mag, EE_mag, Eb_mag, Ev_mag)
    return tuple(a[None] for a in out), tuple(EXACT_ROUNDING * a[None] for a in mag)
