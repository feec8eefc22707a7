"""Two discretisations of the law rho(u) of the rescaled weak weights and of its Fokker-Planck equation

    d rho/d alpha = -d/du [A(u) rho] + D d^2 rho/du^2,   A(u) = f + g u - kappa sign(u),   D = B/2,

with zero flux at the walls (at finite d under the l_1 attack the walls are the ceiling |u| = c, where the
attack holds the weak weights; theory.multinorm.solve).

FiniteVolumes (Eulerian): cell masses on a grid of [-U, U] (refined at 0) with a face at u = 0.  The flux through a
face is the exact stationary flux of the drift-diffusion between the two neighbouring cell centres with the
drift constant on each half (Scharfetter-Gummel with two segments): the sign(u) jump sits on the face u = 0 and
is resolved exactly; second order in the cell width where the cell Peclet number |A| h/D is small, first
order (upwind) where advection dominates.  Zero flux at +-U.

Quantiles (Lagrangian, deterministic particles): the positions X(s) of fixed mass levels Phi(s) on a uniform
grid of s in [-S, S] (mass phi(s) ds each).  Mass moves with the flux velocity v = A - D d(log rho)/du; with
rho(X(s)) X_s = phi(s), v = A(X) + D (s X_s + X_ss)/X_s^2.  A Gaussian law is X linear in s, on which the
central differences are exact: the scheme keeps Gaussian laws Gaussian to rounding.  The sign term is averaged
over each particle's cell [X_(k-1/2), X_(k+1/2)] (consistent, and smooth in the positions).

Both give the moments ubar = E u, L1 = E|u|, Q_law = E u^2, the law F of |u|, and the finite-d l_1 terms:
pi0 = F(|u0|)^d and E[max(|u0|, max_i |u_i|)] = |u0| + int_{|u0|}^inf (1 - F(t)^d) dt (d i.i.d. weights), and
the finite volumes the density at the walls (the ceiling's reflection rate).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

__all__ = ["FiniteVolumes", "Quantiles"]


def _expm1_over(x):
    """(e^x - 1)/x, 1 at x = 0."""
    x = np.asarray(x, dtype=float)
    small = np.abs(x) < 1e-6
    safe = np.where(small, 1.0, np.clip(x, -700.0, 700.0))
    return np.where(small, 1.0 + 0.5 * x, np.expm1(safe) / safe)


def _e1(x: float) -> float:
    """(e^x - 1)/x, 1 at x = 0 (scalar)."""
    return 1.0 + 0.5 * x if abs(x) < 1e-6 else math.expm1(x) / x


def _sg_scalar(rl, rr, AL, AR, lL, lR, D) -> float:
    """The two-segment Scharfetter-Gummel flux of :meth:`FiniteVolumes._sg` at one face (scalars)."""
    a1, a2 = min(max(AL * lL / D, -700.0), 700.0), min(max(AR * lR / D, -700.0), 700.0)
    S = a1 + a2
    if S > 0:
        return D * (rl - rr * math.exp(-S)) / (lL * _e1(-a1) + lR * math.exp(-a1) * _e1(-a2))
    return D * (rl * math.exp(S) - rr) / (lL * _e1(a1) * math.exp(a2) + lR * _e1(a2))


def max_terms(Fcdf, u0: float, d: float, top: float):
    """(pi0, E[max(|u0|, M)]) for M the max of d i.i.d. |u| with CDF Fcdf (callable), top = support end."""
    if math.isinf(d):
        return (1.0 if u0 > 0 else 0.0), u0
    a = abs(u0)
    pi0 = float(Fcdf(np.array([a]))[0]) ** d if a < top else 1.0
    if a >= top:
        return pi0, a
    t = np.linspace(a, top, 801)
    tail = 1.0 - np.exp(d * np.log(np.clip(Fcdf(t), 1e-300, 1.0)))
    return pi0, a + float(np.trapezoid(tail, t))


def _phi(x):
    x = np.asarray(x, dtype=float)
    return np.where(np.isfinite(x), np.exp(-0.5 * np.where(np.isfinite(x), x, 0.0) ** 2), 0.0) / math.sqrt(2 * math.pi)


def _sphi(x):
    """x phi(x), 0 at +-inf."""
    x = np.asarray(x, dtype=float)
    fin = np.isfinite(x)
    return np.where(fin, np.where(fin, x, 0.0) * _phi(x), 0.0)


class FiniteVolumes:
    """Cell masses m_j of xi = u/sigma on [-U, U], n cells (n even: a face at 0), sigma = sqrt(1 - w0^2).

    The grid moves with the scale of the law: in xi the drift is A(sigma xi)/sigma - (sigma'/sigma) xi and the
    diffusion D/sigma^2, and E xi^2 = 1 for the exact solution (the sparsified laws of l_inf training shrink
    to a small sigma, which a fixed grid in u would not resolve).
    """

    name = "fv"

    def __init__(self, n: int = 400, U: float = 8.0, stretch: float = 3.0, edge: float = 3.0, flux: str = "central"):
        if n % 2:
            raise ValueError("n must be even (a face at u = 0)")
        if flux not in ("central", "sg"):
            raise ValueError("flux must be 'central' or 'sg'")
        self.n, self.U, self.flux = n, U, flux
        if edge <= 0.0:
            # faces U sinh(c t)/sinh(c), t uniform on [-1, 1]: cells sinh(c)/c times finer at 0 (the cusp of the
            # l_inf-trained laws) than a uniform grid, coarser in the tails; symmetric, a face at 0
            t = np.linspace(-1.0, 1.0, n + 1)
            self.faces = U * np.sinh(stretch * t) / math.sinh(stretch) if stretch > 0 else U * t
            self.faces[n // 2] = 0.0
        else:
            # walls on the l_1 ceiling (finite d): the faces equidistribute the cell density
            # lambda(xi) = 1 + stretch^2 exp(-|xi|) + edge^2 exp(-4 (U - |xi|)): cells stretch^2 + 1 times finer
            # at 0 than in the bulk and edge^2 + 1 times finer at the walls (the boundary layer of the ceiling)
            xi = np.linspace(0.0, U, 20001)
            lam = 1.0 + stretch**2 * np.exp(-xi) + edge**2 * np.exp(-4.0 * (U - xi))
            cum = np.concatenate(([0.0], np.cumsum(0.5 * (lam[1:] + lam[:-1]) * np.diff(xi))))
            half = np.interp(np.linspace(0.0, cum[-1], n // 2 + 1), cum, xi)
            half[0], half[-1] = 0.0, U
            self.faces = np.concatenate((-half[::-1], half[1:]))
        self.hc = np.diff(self.faces)
        self.h = self.hc  # cell widths
        self.uc = 0.5 * (self.faces[1:] + self.faces[:-1])
        self.t_faces = self.faces[n // 2:]  # 0, ..., U: |u| at the faces
        # interior faces: the two half segments between the neighbouring cell centres, their midpoints and signs
        uf = self.faces[1:-1]
        self._lL, self._lR = 0.5 * self.hc[:-1], 0.5 * self.hc[1:]
        self._hh = self._lL + self._lR
        self._uL, self._uR = uf - 0.5 * self._lL, uf + 0.5 * self._lR
        self._sL, self._sR = np.sign(self._uL), np.sign(self._uR)
        self._k0 = n // 2 - 1  # the face u = 0

    def initial(self, mean: float, var: float, sigma: float = 1.0) -> np.ndarray:
        """Cell masses of u ~ N(mean, var) in xi = u/sigma."""
        sd = math.sqrt(var)
        cdf = ndtr((sigma * self.faces - mean) / sd)
        cdf[0], cdf[-1] = 0.0, 1.0  # mass beyond the walls (the l_1 ceiling) held in the edge cells
        m = np.diff(cdf)
        return m / m.sum()

    def moments(self, m, sigma: float = 1.0):
        """(ubar, L1, E u^2) with the density constant in each cell (exact for |u|: no cell straddles 0)."""
        ubar = float(self.uc @ m)
        L1 = float(np.abs(self.uc) @ m)
        Q = float((self.uc**2 + self.hc**2 / 12.0) @ m)
        return sigma * ubar, sigma * L1, sigma * sigma * Q

    def folded_cdf(self, m, sigma: float = 1.0):
        """F(t) = P(|u| <= t), piecewise linear between the faces |u| = 0, sigma h, ..., sigma U."""
        half = self.n // 2
        mf = m[half:] + m[:half][::-1]
        F = np.concatenate(([0.0], np.cumsum(mf)))
        F = F / F[-1]
        tf = sigma * self.t_faces
        return lambda t: np.interp(t, tf, F)

    def sample_covariance(self, m, sigma: float = 1.0) -> np.ndarray:
        """The covariance of (u, |u|, u^2) under the law (density constant in each cell, exact cell integrals;
        no cell straddles 0): the covariance of one weak weight's (u, |u|, u^2), d times that of the averages
        (ubar, L1, Q) of d independent draws."""
        a, b = sigma * self.faces[:-1], sigma * self.faces[1:]
        sgn = np.sign(a + b)
        p = m / m.sum()

        def moment(k):  # E u^k, cell by cell
            return p @ ((b ** (k + 1) - a ** (k + 1)) / ((k + 1) * (b - a)))
        E1, E2, E3, E4 = (moment(k) for k in (1, 2, 3, 4))
        Ea1 = p @ (sgn * (b * b - a * a) / (2.0 * (b - a)))  # E|u|
        Ea3 = p @ (sgn * (b ** 4 - a ** 4) / (4.0 * (b - a)))  # E|u|^3
        Eua = p @ (sgn * (b ** 3 - a ** 3) / (3.0 * (b - a)))  # E u|u|
        return np.array([[E2 - E1 * E1, Eua - E1 * Ea1, E3 - E1 * E2],
                         [Eua - E1 * Ea1, E2 - Ea1 * Ea1, Ea3 - Ea1 * E2],
                         [E3 - E1 * E2, Ea3 - Ea1 * E2, E4 - E2 * E2]])

    def dL1(self, m, sigma: float = 1.0):
        """d L1 / d m (L1 is linear in the masses)."""
        return sigma * np.abs(self.uc)

    def top(self, m, sigma: float = 1.0) -> float:
        return sigma * self.U

    def density(self, m, sigma: float = 1.0):
        return sigma * self.uc, m / (self.hc * sigma)

    def wall_density(self, m, sigma: float = 1.0) -> float:
        """rho(c) + rho(-c) at the walls |u| = c = sigma U: the density of the two edge cells extrapolated to the
        wall along the exponential through the last two cells (exact for the boundary layer exp(A u/D) of a
        zero-flux wall with locally constant drift; the edge cells are refined, see __init__)."""
        r = np.maximum(m / self.hc, 1e-300)
        uc, f = self.uc, self.faces
        out = 0.0
        for i, j, wall in ((-1, -2, f[-1]), (0, 1, f[0])):
            t = (wall - uc[i]) / (uc[i] - uc[j])
            out += r[i] * math.exp(min(max(t * math.log(r[i] / r[j]), -50.0), 2.0))
        return out / sigma

    def _sg(self, rl, rr, AL, AR, lL, lR, D):
        """The two-segment Scharfetter-Gummel flux: the exact stationary flux between two cell centres with the
        drift AL on the left half segment (length lL) and AR on the right one (arrays or scalars)."""
        a1, a2 = AL * lL / D, AR * lR / D
        S = a1 + a2
        # J = D (rl e^S - rr) / (lL E(a1) e^a2 + lR E(a2)), E(x) = (e^x - 1)/x; rescaled by e^-S when S > 0
        pos = S > 0
        with np.errstate(over="ignore", invalid="ignore"):
            # both branches are evaluated by np.where: the exponents are clipped where not selected
            eS = np.exp(-np.clip(np.abs(S), 0.0, 700.0))
            num = np.where(pos, rl - rr * eS, rl * eS - rr)
            den_pos = lL * _expm1_over(-a1) + lR * np.exp(np.clip(-a1, None, 700.0)) * _expm1_over(-a2)
            den_neg = lL * _expm1_over(a1) * np.exp(np.clip(a2, None, 700.0)) + lR * _expm1_over(a2)
            return D * num / np.where(pos, den_pos, den_neg)

    def rhs(self, m, co, u0: float, d: float, Fcdf=None, diffusion: bool = True, sigma: float = 1.0,
            dsigma: float = 0.0):
        """dm/dalpha for the coefficients ``co`` (f, g, kappa, B) in the frame xi = u/sigma, sigma' = dsigma."""
        lL, lR, uL, uR = self._lL, self._lR, self._uL, self._uR
        # the drift in xi on the two half segments of every interior face (sign(u) constant on each)
        c0, c1 = co.f / sigma, co.g - dsigma / sigma
        AL = c0 + c1 * uL - (co.kappa / sigma) * self._sL
        AR = c0 + c1 * uR - (co.kappa / sigma) * self._sR
        rho = m / self.hc
        rl, rr = rho[:-1], rho[1:]
        D = 0.5 * co.B / sigma**2 if diffusion else 0.0
        if D <= 0.0:  # upwind with the drifts of the two half segments
            J = np.maximum(AL, 0.0) * rl + np.minimum(AR, 0.0) * rr
        elif self.flux == "sg":
            J = self._sg(rl, rr, AL, AR, lL, lR, D)
        else:
            # faces where the drift is continuous (all but u = 0): J = (D/h)(a rho_L - b rho_R) with
            # a - b = Pe = A h/D (exact for a constant density) and a + b = (2^p + |Pe|^p)^(1/p), p = 8: central
            # differences (no numerical diffusion) where |Pe| < 2, upwind where advection dominates, a, b >= 0
            # (positive) and smooth in Pe.  Scharfetter-Gummel's a + b = Pe coth(Pe/2) = 2 + Pe^2/6 + ... adds
            # the diffusion D Pe^2/12 (16 % at Pe = 1.4: the l_inf pull kappa on 1600 cells; at d = inf the error
            # of E u^2 + w0^2 - 1 falls 10-20x, tests/test_multinorm_theory.py); the face u = 0 keeps the
            # two-segment Scharfetter-Gummel flux, exact across the jump of sign(u)
            Pe = (AL * lL + AR * lR) / D
            aP = np.abs(Pe)
            big, small = np.maximum(aP, 2.0), np.minimum(aP, 2.0)
            Ssum = big * (1.0 + (small / big) ** 8) ** 0.125
            J = (D / self._hh) * (0.5 * (Ssum + Pe) * rl - 0.5 * (Ssum - Pe) * rr)
            k = self._k0
            J[k] = _sg_scalar(float(rl[k]), float(rr[k]), float(AL[k]), float(AR[k]), float(lL[k]), float(lR[k]), D)
        out = np.empty_like(m)
        out[0] = -J[0]
        out[1:-1] = J[:-1] - J[1:]
        out[-1] = J[-1]
        return out


class Quantiles:
    """Positions X_k of the mass levels Phi(s_k), s_k uniform on [-S, S] (n + 1 particles)."""

    name = "particles"

    def __init__(self, n: int = 400, S: float = 8.0):
        self.n, self.S = n, S
        self.s = np.linspace(-S, S, n + 1)
        self.ds = self.s[1] - self.s[0]
        w = np.exp(-0.5 * self.s**2)
        w[0] *= 0.5
        w[-1] *= 0.5
        self.w = w / w.sum()  # trapezoid weights of phi(s) ds, normalised (mass exactly 1)

    def initial(self, mean: float, var: float, sigma: float = 1.0) -> np.ndarray:
        return mean + math.sqrt(var) * self.s

    def dL1(self, X, sigma: float = 1.0):
        """d L1 / d X_k, approximately (the trapezoid weights of |X|)."""
        return self.w * np.sign(X)

    def top(self, X, sigma: float = 1.0) -> float:
        return float(np.max(np.abs(X)))

    def moments(self, X, sigma: float = 1.0):
        """(E u, E|u|, E u^2) for X(s) linear between the particles (and beyond the ends): exact integrals
        against phi(s) ds, so that a Gaussian law (X linear) has exact moments and |u| has no quadrature
        error at its kink."""
        s = self.s
        beta = np.diff(X) / self.ds
        beta = np.concatenate(([beta[0]], beta, [beta[-1]]))
        lo = np.concatenate(([-np.inf], s))
        hi = np.concatenate((s, [np.inf]))
        alpha = np.concatenate(([X[0] - beta[0] * s[0]], X - beta[1:] * s))  # X = alpha + beta s per piece
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(beta != 0.0, -alpha / np.where(beta != 0.0, beta, 1.0), lo)
        r = np.clip(r, lo, hi)

        def J1(a, b):  # int_a^b (alpha + beta s) phi(s) ds
            return alpha * (ndtr(b) - ndtr(a)) + beta * (_phi(a) - _phi(b))
        m1 = J1(lo, hi)
        L1 = np.abs(J1(lo, r)) + np.abs(J1(r, hi))
        I2 = (ndtr(hi) - _sphi(hi)) - (ndtr(lo) - _sphi(lo))
        m2 = alpha**2 * (ndtr(hi) - ndtr(lo)) + 2 * alpha * beta * (_phi(lo) - _phi(hi)) + beta**2 * I2
        return float(m1.sum()), float(L1.sum()), float(m2.sum())

    def folded_cdf(self, X, sigma: float = 1.0):
        """F(t) = P(|u| <= t) = P(u <= t) - P(u < -t), with u -> s by interpolation of the monotone X(s)."""
        s = self.s

        def F(t):
            t = np.asarray(t, dtype=float)
            return np.clip(ndtr(np.interp(t, X, s, left=-np.inf, right=np.inf))
                           - ndtr(np.interp(-t, X, s, left=-np.inf, right=np.inf)), 0.0, 1.0)
        return F

    def density(self, X, sigma: float = 1.0):
        Xs = np.gradient(X, self.ds)
        return X, np.exp(-0.5 * self.s**2) / math.sqrt(2.0 * math.pi) / Xs

    def rhs(self, X, co, u0: float, d: float, Fcdf=None, diffusion: bool = True, sigma: float = 1.0,
            dsigma: float = 0.0):
        ds = self.ds
        # ghost particles by linear extrapolation (X_ss = 0 at the ends, where the mass is ~1e-15)
        Xg = np.concatenate(([2.0 * X[0] - X[1]], X, [2.0 * X[-1] - X[-2]]))
        Xs = (Xg[2:] - Xg[:-2]) / (2.0 * ds)
        Xss = (Xg[2:] - 2.0 * X + Xg[:-2]) / (ds * ds)
        # sign(u) averaged over each particle's cell [mid_(k-1/2), mid_(k+1/2)]
        lo, hi = 0.5 * (Xg[:-2] + X), 0.5 * (X + Xg[2:])
        length = hi - lo
        pos = np.clip(hi, 0.0, None) - np.clip(lo, 0.0, None)
        neg = np.clip(hi, None, 0.0) - np.clip(lo, None, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            sg = np.where(length > 0.0, (pos - neg) / np.where(length > 0.0, length, 1.0), np.sign(X))
        v = co.f + co.g * X - co.kappa * sg
        if diffusion and co.B > 0.0:
            v = v + 0.5 * co.B * (self.s * Xs + Xss) / (Xs * Xs)
        return v
