"""Solvers of the large-d theory: (w0, b) coupled to the Fokker-Planck equation of rho(u) (docs/multinorm.md).

``solve(params, alphas, d, method=...)``:

- 'fv'         finite volumes for rho (:class:`theory.multinorm.laws.FiniteVolumes`)
- 'particles'  deterministic quantile particles (:class:`theory.multinorm.laws.Quantiles`); the two check
               each other (tests/test_multinorm_theory.py)
- 'moments'    the exact reduction where rho stays Gaussian (std, adv_2: the drift is linear in u): an ODE for
               (w0, b, mean, variance)
- 'gauss_closure'  the Gaussian closure applied to every scheme (E sign u and E|u| of N(mean, variance)); exact
               only for std and adv_2 (a deliberately incomplete model, for comparison)
- 'no_diffusion'   the finite volumes (upwind) without the eta_w^2 diffusion term (each weak weight follows
               its mean drift; a deliberately incomplete model, for comparison)

Switching.  Two right-hand sides are discontinuous in the state and are solved in Filippov's sense (the
chattering of the per-example choice averages out in the large-d limit): 'max' switches between its l_inf
and l_1 modes on the sign of Delta_inf - Delta_1 (ties to l_inf), and at d = inf the l_1 attack's move of
x_0 has the sign of w0.  Where both sides point into the switching surface the solver takes the convex
combination of the two fields that relaxes the switching function to 0 at rate 1/TAU (the exact sliding
motion once on the surface; TAU only shapes the approach).

The l_1 ceiling (finite d, schemes that train on the l_1 attack; docs/multinorm.md).  Each l_1 step shaves the
largest |w_j| by (eta_w/N) eps1 |D| (sqrt(d) times that in u): K = -m1 = eta_w c_1 eps1 |Y_1| of |w| per unit alpha
in all, O(sqrt(d)) in u, so no weak weight can pass the largest one for long: the top of the law is a flat
ceiling and x_0 sits on it.  The law of u lives on |u| <= c = sqrt(d) |w0| with reflecting walls (the finite
volumes' walls are put on c once it is inside the law's range); the weak weights held at the walls take d times
the law's reflection rate (local time) D rho_|u|(c), D = B/2, of the budget, and x_0 the rest: its share is
1 - sqrt(d) D rho_|u|(c)/K, clipped to [0, 1].  While x_0 is above the law (rho(c) = 0) it takes every l_1 step;
as it descends into the law the reflection rate grows until the shares balance; and the l_1 shift is
eps1 |w0| (no weak weight above x_0).
"""

from __future__ import annotations

import math
import time

import numpy as np
from scipy.integrate import solve_ivp
from scipy.sparse import csc_matrix
from scipy.special import erf, ndtr

from .drift import Coefficients, coefficients, scheme_modes
from .errors import State, errors
from .laws import FiniteVolumes, Quantiles, max_terms
from .params import MultinormParams, ParameterError, check_d

__all__ = ["solve", "METHODS", "TAU", "time_solve"]

METHODS = ("fv", "particles", "moments", "gauss_closure", "no_diffusion")
#: relaxation time (alpha units) of the switching function onto a sliding surface
TAU = 0.02
#: default tolerances of the time integration: every reported quantity within ~3e-6 of rtol 1e-9 (avg, adv_1,
#: adv_inf, max at d = 1000, 4000 to alpha = 50), far below the solvers' discretisation error (1e-4)
RTOL, ATOL = 1e-6, 1e-9


def _sigma_inf(co: Coefficients, w0: float) -> float:
    """sigma (x_0's share and sign of the l_1 attack) at d = inf: sign(w0), or Filippov's value at w0 = 0."""
    if co.m1 == 0.0:
        return 0.0
    s = -(co.n0 + w0 / TAU) / co.m1  # m1 < 0: the relaxed equivalent control
    return float(np.clip(s, -1.0, 1.0))


class _System:
    """The right-hand side y' = F(y), y = (w0, b, law)."""

    def __init__(self, p: MultinormParams, d: float, law, diffusion: bool = True):
        self.p, self.d, self.law, self.diffusion = p, d, law, diffusion
        self.modes = scheme_modes(p.scheme)
        self.uses_l1 = "l1" in p.attacks
        # the l_1 ceiling (finite d, schemes that train on the l_1 attack): the law of u lives on |u| <= c =
        # sqrt(d) |w0|, the finite volumes' walls sit on it (docs/multinorm.md, "The l_1 ceiling")
        self.ceiling = (not math.isinf(d)) and self.uses_l1 and hasattr(law, "wall_density")

    def scale(self, w0: float):
        """(s, ds/dw0): the law is discretised in xi = u/s.  s = sqrt(1 - w0^2) (the scale of the law), or, with
        the ceiling, min(sqrt(1 - w0^2), c/U): the walls xi = +-U sit on the ceiling c = sqrt(d)|w0| once it
        is inside the law's range."""
        sig = math.sqrt(max(1.0 - w0 * w0, 1e-300))
        if self.ceiling:
            U = self.law.U
            c = math.sqrt(self.d) * abs(w0)
            if c / U < sig:
                return max(c / U, 1e-12), math.sqrt(self.d) / U * (1.0 if w0 >= 0.0 else -1.0)
        return sig, -w0 / sig

    # state statistics ---------------------------------------------------------------------
    def stats(self, y, full: bool = False):
        """The statistics of the state y that the field needs (``full``: also wmax = E max_i |w_i| and the law
        of |u|, for the output)."""
        w0, b, x = y[0], y[1], y[2:]
        sigma, dsig_dw0 = self.scale(w0)
        ubar, L1, Qlaw = self.law.moments(x, sigma)
        d = self.d
        Fcdf = None
        rho_c = None
        pi0, emax_w, wmax = (1.0 if w0 != 0.0 else 0.0), abs(w0), 0.0
        if not math.isinf(d):
            sd = math.sqrt(d)
            top = self.law.top(x, sigma)
            if self.ceiling:
                rho_c = self.law.wall_density(x, sigma)
            if full or (self.uses_l1 and top > sd * abs(w0) * (1.0 + 1e-12)):
                # the law reaches above x_0 (no ceiling: the Gaussian closure, or the walls below sqrt(d)|w0|)
                Fcdf = self.law.folded_cdf(x, sigma)
                pi0, emax_u = max_terms(Fcdf, sd * w0, d, top)
                emax_w = emax_u / sd
                if full:
                    wmax = max_terms(Fcdf, 0.0, d, top)[1] / sd
        return dict(w0=w0, b=b, sigma=sigma, dsig_dw0=dsig_dw0, ubar=ubar, L1=L1, Qlaw=Qlaw, Fcdf=Fcdf, pi0=pi0,
                    emax_w=emax_w, wmax=wmax, rho_c=rho_c)

    def switch(self, st) -> float:
        """Delta_inf - Delta_1 (the 'max' scheme trains on l_inf where it is >= 0)."""
        p, d = self.p, self.d
        fin = 0.0 if math.isinf(d) else abs(st["w0"]) / math.sqrt(d)
        return p.e * (fin + st["L1"]) - p.eps1 * st["emax_w"]

    def mode_field(self, y, st, weights, vform):
        co = coefficients(weights, vform, st["w0"], st["b"], st["ubar"], st["L1"], st["emax_w"], self.p, self.d)
        return co, self._field(y, st, co)

    def share(self, st, co) -> float:
        """sigma: x_0's share of the l_1 attack's steps, with its sign (dw0 = n0 + m1 sigma).

        d = inf: sign(w0) (Filippov at 0).  With the ceiling: the l_1 steps shave, per unit alpha, K = -m1 of
        |w| in all (K sqrt(d) in u); the weak weights held at the ceiling take d times the reflection rate
        D rho_|u|(c) of the law (its local time at the walls, D = B/2), x_0 the rest:
        sigma = sign(w0) clip(1 - sqrt(d) D rho_|u|(c)/K, 0, 1).  Otherwise (the Gaussian closure at finite d):
        the annealed probability pi0 that x_0 is the largest of d + 1 independent weights."""
        w0 = st["w0"]
        if math.isinf(self.d):
            return _sigma_inf(co, w0)
        sgn = math.copysign(1.0, w0) if w0 != 0.0 else 0.0
        if st["rho_c"] is not None:
            K = -co.m1
            if K <= 0.0:
                return sgn
            D = 0.5 * co.B if self.diffusion else 0.0
            return sgn * min(1.0, max(0.0, 1.0 - math.sqrt(self.d) * D * st["rho_c"] / K))
        return st["pi0"] * sgn

    def _field(self, y, st, co):
        w0 = st["w0"]
        u0 = 0.0 if math.isinf(self.d) else math.sqrt(self.d) * w0
        dw0 = co.n0 + co.m1 * self.share(st, co)
        dsig = st["dsig_dw0"] * dw0
        dlaw = self.law.rhs(y[2:], co, u0, self.d, st["Fcdf"], self.diffusion, st["sigma"], dsig)
        return np.concatenate(([dw0, co.db], dlaw))

    def resolve(self, y):
        """(statistics, the coefficients in force, y') at the state y."""
        st = self.stats(y)
        if len(self.modes) == 1:
            co, F = self.mode_field(y, st, *self.modes[0])
            return st, co, F
        theta, (co_p, F_p), (co_m, F_m) = self.max_theta(y, st)
        if theta == 1.0:
            return st, co_p, F_p
        if theta == 0.0:
            return st, co_m, F_m
        co = co_p.combine(co_m, theta)
        return st, co, self._field(y, st, co)

    def max_theta(self, y, st):
        """'max': (theta, (co_inf, F_inf), (co_1, F_1)), theta the l_inf mode's weight: 1 where Delta_inf > Delta_1,
        0 where below, Filippov's sliding combination on the surface."""
        (co_p, F_p), (co_m, F_m) = (self.mode_field(y, st, *m) for m in self.modes)
        g = self.switch(st)
        s_p, s_m = self._dswitch(y, st, g, F_p), self._dswitch(y, st, g, F_m)
        if s_p < 0.0 < s_m:
            theta = float(np.clip((-g / TAU - s_m) / (s_p - s_m), 0.0, 1.0))
        else:
            theta = 1.0 if g >= 0.0 else 0.0
        return theta, (co_p, F_p), (co_m, F_m)

    def replica_shift(self, y, st):
        """'max' at finite d off the switching surface: (d ubar, d L1, d w0), the mean of the replicas' state
        minus the mean-field state (docs/multinorm.md, "'max' near its switching surface at finite d").

        The replicas' (ubar, L1, Q) fluctuate like the averages of d independent draws from rho (covariance
        C/d, C = :meth:`FiniteVolumes.sample_covariance`) and w0 = sqrt(1 - Q) (dw0 = -dQ/(2 w0)), so the
        switching function S = Delta_inf - Delta_1 = e (|w0|/sqrt d + L1) - eps1 |w0| spreads by
        sigma_S^2 = s' Cw s.  A replica that crosses S = 0 takes l_1 steps, whose field moves S back at O(1) per
        unit alpha: the l_1 side acts as a wall, and the replicas' law is the Gaussian centred on the mean-field
        state restricted to S > 0, whose mean is shifted along Cov(state, S)/sigma_S^2 by
        sigma_S phi(S0/sigma_S)/Phi(S0/sigma_S), S0 the mean-field state's S (the shift -> 0 as d -> inf).
        None on the sliding surface (theta < 1: the replicas are held there from both sides, and this law does
        not apply)."""
        p, d, w0 = self.p, self.d, st["w0"]
        if self.max_theta(y, st)[0] < 1.0:
            return None
        if st["emax_w"] > abs(w0) * (1.0 + 1e-9):
            raise ParameterError("replica_mean: a weak weight is the l_1 attack's coordinate (x_0 is not the "
                                 "largest weight); the shift assumes Delta_1 = eps1 |w0|")
        C = self.law.sample_covariance(y[2:], st["sigma"])
        A = np.diag([1.0, 1.0, -1.0 / (2.0 * abs(w0))])  # (ubar, L1, Q) -> (ubar, L1, |w0|)
        Cw = A @ C @ A.T / d
        s_vec = np.array([0.0, p.e, p.e / math.sqrt(d) - p.eps1])  # dS along (ubar, L1, |w0|)
        var = float(s_vec @ Cw @ s_vec)
        sig = math.sqrt(var)
        a = self.switch(st) / sig
        mills = math.exp(-0.5 * a * a) / math.sqrt(2.0 * math.pi) / max(float(ndtr(a)), 1e-300)
        dub, dL1, dw = Cw @ s_vec / var * sig * mills
        return dub, dL1, (dw if w0 > 0.0 else -dw)

    def __call__(self, alpha, y):
        return self.resolve(y)[2]

    def jac(self, alpha, y):
        """An approximate Jacobian for the Newton iterations of BDF: the law's block is the discretised
        Fokker-Planck operator with the coefficients and the law of |u| frozen (tridiagonal, by three grouped
        differences); the (w0, b) columns, and with the ceiling the columns of the two edge cells on each side
        (their density at the wall sets x_0's share of the l_1 steps, which moves w0 and so the walls), by
        differences of the whole field; the rest of the mean-field coupling of the coefficients to the law is
        left out (it changes the convergence of Newton's method, not the solution)."""
        st, co, F = self.resolve(y)
        n = y.size
        x = y[2:]
        w0 = st["w0"]
        u0 = 0.0 if math.isinf(self.d) else math.sqrt(self.d) * w0
        dsig = st["dsig_dw0"] * F[0]

        def law_rhs(xx):
            return self.law.rhs(xx, co, u0, self.d, st["Fcdf"], self.diffusion, st["sigma"], dsig)
        base = law_rhs(x)
        m = x.size
        rows, cols, vals = [], [], []
        eps = 1e-7 * max(1.0, float(np.max(np.abs(x))))
        idx = np.arange(m)
        # the walls on the ceiling (scale c/U below the law's sqrt(1 - w0^2)): the edge cells set x_0's share
        on_ceiling = self.ceiling and st["sigma"] < math.sqrt(max(1.0 - w0 * w0, 0.0)) * (1.0 - 1e-12)
        full = [0, 1] + ([2, 3, n - 2, n - 1] if on_ceiling else [])
        skip = np.zeros(m, bool)
        if on_ceiling:
            skip[[0, 1, m - 2, m - 1]] = True
        for grp in range(3):
            sel = idx[grp::3]
            sel = sel[~skip[sel]]
            xp = x.copy()
            xp[sel] += eps
            col = (law_rhs(xp) - base) / eps
            for off in (-1, 0, 1):
                r = sel + off
                ok = (r >= 0) & (r < m)
                rows.append(r[ok] + 2)
                cols.append(sel[ok] + 2)
                vals.append(col[r[ok]])
        for j in full:
            h = (1e-7 * max(1.0, abs(y[j]))) if j < 2 else eps
            yp = y.copy()
            yp[j] += h
            col = (self(alpha, yp) - F) / h
            rows.append(np.arange(n))
            cols.append(np.full(n, j))
            vals.append(col)
        J = csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
        # On the sliding surface of 'max' the field is F_m + theta (F_p - F_m), theta relaxing the switching function
        # at rate 1/TAU = 50: its rank-one term (F_p - F_m)(d theta/dy) is dense and left out too.  Newton's
        # iterations still converge, and the sparse LU makes 'max' ~1.6x faster than with the dense rank-one
        # Jacobian (to alpha = 50: every reported quantity within 1e-6 of it, d = 1000, 4000, inf).
        return J

    def _dswitch(self, y, st, g, F):
        """d(Delta_inf - Delta_1)/dalpha along the field F.  Exact where the l_1 shift is eps1 |w0| (no weak
        weight above x_0: d = inf, or the law below sqrt(d)|w0|) and the law is the finite volumes' (L1 linear in
        the masses); otherwise a central difference (smooth in the state, so that the sliding combination is
        smooth too; a one-sided difference's rounding noise stalls BDF)."""
        w0 = st["w0"]
        if isinstance(self.law, FiniteVolumes) and st["emax_w"] == abs(w0):
            sgn = math.copysign(1.0, w0) if w0 != 0.0 else 0.0
            x = y[2:]
            dsig = st["dsig_dw0"] * F[0]
            dL1 = self.law.dL1(x, st["sigma"]) @ F[2:] + (dsig / st["sigma"]) * st["L1"]
            fin = 0.0 if math.isinf(self.d) else sgn * F[0] / math.sqrt(self.d)
            return self.p.e * (fin + dL1) - self.p.eps1 * sgn * F[0]
        h = 1e-4 / max(1.0, float(np.max(np.abs(F))))
        return (self.switch(self.stats(y + h * F)) - self.switch(self.stats(y - h * F))) / (2.0 * h)


def _errors(st, p: MultinormParams, d: float):
    """E, S_inf, S_1, union at one state through theory.multinorm.errors.errors (the route of every engine),
    with wmax = E[max_i |w_i|] of d independent weights from the law (0 at d = inf; at most |w0| under the
    ceiling, where the l_1 shift is eps1 |w0|)."""
    S = State(w0=st["w0"], b=st["b"], ubar=st["ubar"], Q=1.0 - st["w0"] ** 2, L1=st["L1"], wmax=st["wmax"])
    return {k: float(v) for k, v in errors(S, p, d).items()}


def _gauss_moments(m, v):
    """E sign u, E|u| for u ~ N(m, v)."""
    sd = math.sqrt(max(v, 1e-300))
    Es = math.erf(m / (math.sqrt(2.0) * sd))
    Ea = sd * math.sqrt(2.0 / math.pi) * math.exp(-0.5 * m * m / (sd * sd)) + m * Es
    return Es, Ea


class _GaussLaw:
    """rho = N(mean, var): the exact law for std and adv_2, a closure otherwise (state: mean, var)."""

    name = "gauss"

    def moments(self, x, sigma=1.0):
        m, v = x
        return m, _gauss_moments(m, v)[1], v + m * m

    def top(self, x, sigma=1.0):
        return abs(x[0]) + 12.0 * math.sqrt(max(x[1], 0.0))

    def folded_cdf(self, x, sigma=1.0):
        m, v = x
        sd = math.sqrt(max(v, 1e-300))
        return lambda t: np.clip(0.5 * (erf((np.asarray(t) - m) / (math.sqrt(2) * sd))
                                        - erf((-np.asarray(t) - m) / (math.sqrt(2) * sd))), 0.0, 1.0)

    def rhs(self, x, co, u0, d, Fcdf=None, diffusion=True, sigma=1.0, dsigma=0.0):
        m, v = x
        Es, Ea = _gauss_moments(m, v)
        # the l_1 kick on the top of the law (finite d) is not part of the closure
        dm = co.f + co.g * m - co.kappa * Es
        dv = 2.0 * co.g * v + (co.B if diffusion else 0.0) - 2.0 * co.kappa * (Ea - m * Es)
        return np.array([dm, dv])


def _make_law(method: str, opts: dict, p: MultinormParams, d: float):
    if method in ("fv", "no_diffusion"):
        # Defaults (measured; docs/multinorm.md, Solvers).  With the l_1 ceiling (finite d) the walls sit on it
        # and, while x_0 descends into the law, contract at a rate ~1 per unit alpha: the law fills the whole
        # grid and the transport in xi is advection-dominated, so the cells are nearly uniform (stretch 1,
        # edge 1) and 1600 of them (adv_1, d = 1000, L1 at alpha = 1: .8015, .7983, .7972, .7968 with 400, 800,
        # 1600, 3200 cells on the grid refined 10x at 0 and at the walls).  'max' keeps 400 (its ceiling stays
        # above the law, and each of its fields costs two modes).  avg and sat grow an exponential tail
        # (the linear drift g > 0 beyond kappa's pull): walls at 16 sigma instead of 8, and with the ceiling 3200
        # cells (avg at d = 4000, w0 at alpha = 50: .2289, .2205, .2196 with 1600, 3200, 6400 cells).
        ceiling = (not math.isinf(d)) and "l1" in p.attacks
        wide = p.scheme in ("avg", "sat")
        if ceiling and p.scheme != "max":
            dflt = dict(n=3200 if wide else 1600, stretch=1.0, edge=1.0)
        else:
            dflt = dict(n=800 if wide else 400, stretch=3.0, edge=0.0)
        dflt["U"] = 16.0 if wide else 8.0
        o = {**dflt, **opts}
        return FiniteVolumes(n=int(o["n"]), U=float(o["U"]), stretch=float(o["stretch"]), edge=float(o["edge"]),
                             flux=str(o.get("flux", "central")))
    if method == "particles":
        return Quantiles(n=int(opts.get("n", 400)), S=float(opts.get("S", 8.0)))
    return _GaussLaw()


def solve(params: MultinormParams, alphas, d=math.inf, method: str = "fv", *, rtol: float = RTOL,
          atol: float = ATOL, snapshots: bool = True, replica_mean: bool = False, **solver_opts) -> dict:
    """The theory's trajectory at the learning times ``alphas`` (increasing, from 0).

    Returns a dict of arrays over alphas: w0, b, ubar, L1, Q (= 1 - w0^2), Q_law (E u^2 of the law: equal to Q
    up to the discretisation), wmax (E max_i |w_i|, 0 at d = inf), pi0 (x_0's share of the l_1 attack's steps),
    E, S_inf, S_1, union; with ``snapshots`` the law on a grid: 'u' and 'rho'
    (len(alphas) x len(u)).  ``replica_mean`` ('max' at finite d; ignored otherwise): report the mean of the
    replicas' state, which the l_1 steps hold on the l_inf side of the switching surface, instead of the
    mean-field state (:meth:`_System.replica_shift`); refused (ParameterError) where the trajectory slides on the
    surface.  solver_opts: n (cells / particles), U (FV half-width in units of the scale), stretch and
    edge (FV cell refinement at 0 and at the walls), flux ("central" or "sg"), S (particle s-range); the defaults
    depend on the scheme and on d (see _make_law).
    """
    if not isinstance(params, MultinormParams):
        raise ParameterError("params must be a MultinormParams")
    if method not in METHODS:
        raise ParameterError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    d = check_d(d)
    alphas = np.asarray(alphas, dtype=float)
    if alphas.ndim != 1 or alphas.size == 0 or alphas[0] < 0 or np.any(np.diff(alphas) <= 0):
        raise ParameterError("alphas must be a non-empty increasing sequence of times >= 0")
    if method == "moments" and params.scheme not in ("std", "adv_2"):
        raise ParameterError("method 'moments' is exact only for the schemes std and adv_2 (use gauss_closure)")
    if method == "particles" and not math.isinf(d) and "l1" in params.attacks:
        raise ParameterError("method 'particles' solves the d = inf limit and the schemes without the l_1 attack; "
                             "at finite d the l_1 ceiling needs method 'fv'")
    if replica_mean and params.scheme == "max" and not math.isinf(d) and method != "fv":
        raise ParameterError("replica_mean needs method 'fv' (the replicas' spread comes from the law's cells)")
    p = params
    law = _make_law(method, solver_opts, params, d)
    sysm = _System(p, d, law, diffusion=(method != "no_diffusion"))
    Q0 = 1.0 - p.w0 * p.w0
    x0 = np.array([0.0, Q0]) if isinstance(law, _GaussLaw) else law.initial(0.0, Q0, sysm.scale(p.w0)[0])
    y0 = np.concatenate(([p.w0, 0.0], x0))
    t_span = (0.0, float(alphas[-1]))
    if alphas[-1] > 0:
        kw = {}
        if method in ("fv", "particles", "no_diffusion"):
            # the diffusion of the sparsified laws of l_inf training, and the l_1 attack on the top of the law
            # at finite d, are stiff on both grids: BDF with the frozen-coefficient Jacobian of _System.jac
            kw = dict(method="BDF", jac=sysm.jac)
        else:
            kw = dict(method="RK45")
        sol = solve_ivp(sysm, t_span, y0, t_eval=alphas, rtol=rtol, atol=atol, **kw)
        if not sol.success:
            raise RuntimeError(f"the integration failed: {sol.message}")
        Y = sol.y.T
    else:
        Y = y0[None, :]
    out = {k: [] for k in ("w0", "b", "ubar", "L1", "Q", "Q_law", "wmax", "pi0", "E", "S_inf", "S_1", "union")}
    rho = []
    grid = np.linspace(-6.0, 6.0, 481)
    shifted = replica_mean and p.scheme == "max" and not math.isinf(d)
    for y in Y:
        st = sysm.stats(y, full=True)
        if shifted:
            sh = sysm.replica_shift(y, st)
            if sh is None:
                raise ParameterError("replica_mean applies while 'max' stays off its switching surface "
                                     f"Delta_inf = Delta_1; this trajectory slides on it at alpha = "
                                     f"{alphas[len(out['w0'])]:g}")
            st = {**st, "ubar": st["ubar"] + sh[0], "L1": st["L1"] + sh[1], "w0": st["w0"] + sh[2]}
        for k in ("w0", "b", "ubar", "L1"):
            out[k].append(float(st[k]))
        out["Q"].append(1.0 - st["w0"] ** 2)
        out["Q_law"].append(st["Qlaw"])
        out["wmax"].append(st["wmax"])
        out["pi0"].append(abs(sysm.share(st, sysm.resolve(y)[1])) if sysm.uses_l1 else 0.0)
        for k, v in _errors(st, p, d).items():
            out[k].append(v)
        if snapshots:
            if isinstance(law, _GaussLaw):
                m, v = y[2:]
                rho.append(np.exp(-0.5 * (grid - m) ** 2 / v) / math.sqrt(2 * math.pi * v))
            else:
                u, r = law.density(y[2:], st["sigma"])
                rho.append(np.interp(grid, u, r, left=0.0, right=0.0))
    res = {"alphas": alphas, **{k: np.asarray(v) for k, v in out.items()}}
    if snapshots:
        res["u"], res["rho"] = grid, np.asarray(rho)
    res["d"], res["method"] = d, method
    return res


def time_solve(params: MultinormParams, alpha_max: float = 50.0, d=math.inf, method: str = "fv",
               n_alphas: int = 11, **opts) -> float:
    """CPU seconds of one :func:`solve` to alpha_max (the benchmark row of bench/multinorm.py)."""
    t0 = time.process_time()
    solve(params, np.linspace(0.0, alpha_max, n_alphas), d, method, snapshots=False, **opts)
    return time.process_time() - t0
