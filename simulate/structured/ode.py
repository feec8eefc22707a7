"""Integrate the structured-data dynamics (:mod:`theory.structured`): any class means and covariances.

    python -m simulate.structured --N 500 --power 1 --eps 1 [--path spectral|full]

The state is (U'm, c, b) for covariances with a shared eigenbasis (2N + 1 numbers) or (m, C, b) (the full
N x N covariance of w) otherwise; :func:`integrate` solves it with scipy's DOP853 on the alpha grid and
records, at each grid point, the order parameters M_tau = w.mu_tau and Q_tau = w'Sigma_tau w, b, the errors
E and S (l_2, at ``eps_test``) and, when asked, the l_inf/l_1 errors from the law of w's components.

State variables are integrated in the scaled units sqrt(N) m and N c (each O(1)), so one absolute
tolerance fits every N.  Accuracy: rtol 1e-10, atol 1e-12 by default, as :mod:`simulate.ode`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.integrate import solve_ivp

from theory.params import ParameterError, Params
from theory.structured import (FullState, Mixture, SpectralState, errors, errors_from_order_parameters, initial_state,
                               lp_errors, rhs, rhs_linf)

from ..core.cli import (ArgumentParser, add_output_arguments, add_param_arguments, check_outputs, number, one_line_errors,
                  params_from_args, real)
from ..core.grid import check_alphas, check_eps_test, default_alphas
from ..core.provenance import provenance, write_json
from ..core.cli import command
from ..core.run import replica_stats

#: Largest input dimension of the command (spectral path) and of its full N x N path
N_MAX = 1_000_000
N_MAX_FULL = 4000

__all__ = ["StructuredTrajectory", "integrate", "powerlaw_mixture", "monte_carlo", "theory_from_replicas", "compare", "main", "QUANTITIES",
           "MC_QUANTITIES", "MC_BIAS"]

QUANTITIES = ("E", "S", "M_plus", "M_minus", "Q_plus", "Q_minus", "b", "R")


@dataclass(frozen=True)
class StructuredTrajectory:
    """Arrays of length len(alpha): E, S (l_2 at eps_test), M_plus/M_minus, Q_plus/Q_minus, b, R (= B.m, with
    B the unit vector along mu_+ - mu_-), and, if asked, S_linf, S_l1."""

    params: Params
    eps_test: float
    alpha: np.ndarray
    values: dict[str, np.ndarray]
    final: Any
    solver: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name):
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "eps_test": self.eps_test, "solver": self.solver, **self.values}


def _pack(state, N: int) -> np.ndarray:
    sN = math.sqrt(N)
    if isinstance(state, SpectralState):
        return np.concatenate([sN * state.m, N * state.c, [state.b]])
    return np.concatenate([sN * state.m, N * state.C.ravel(), [state.b]])


def _unpack(y: np.ndarray, N: int, spectral: bool):
    sN = math.sqrt(N)
    m = y[:N] / sN
    if spectral:
        return SpectralState(m, y[N:2 * N] / N, float(y[-1]))
    return FullState(m, y[N:N + N * N].reshape(N, N) / N, float(y[-1]))


def _direction(mix: Mixture) -> np.ndarray | None:
    d = mix.mu[0] - mix.mu[1]  # in the state's basis (eigen or pixel)
    n = float(np.linalg.norm(d))
    return d / n if n > 0 else None


def integrate(mix: Mixture, params: Params, alphas, *, state0=None, eps_test: float | None = None,
              noise: bool = True, lp: dict[str, float] | None = None, rtol: float = 1e-10, atol: float = 1e-12,
              method: str = "DOP853", backend: str = "auto", threat: str = "l2") -> StructuredTrajectory:
    """Solve the dynamics from ``state0`` (default: :func:`theory.structured.initial_state` with m0 = R0 B,
    b0 from ``params``) and record the observables on ``alphas``.

    ``noise=False`` drops the eta_w^2 noise term (a deliberately wrong variant for the tests).
    ``lp``: {'eps_inf': ..., 'eps_1': ...} adds S_linf and S_l1 (and the expected norms) at each alpha.
    ``threat='linf'``: l_inf adversarial training with budget params.eps/sqrt(N) per coordinate
    (:func:`theory.structured.rhs_linf`, experimental Gaussian closure); S is then the l2 error at eps_test.
    """
    if not isinstance(mix, Mixture):
        raise ParameterError(f"mix must be a theory.structured.Mixture, got {type(mix).__name__}")
    alphas = check_alphas(alphas)
    eps_test = check_eps_test(eps_test, params)
    N = mix.N
    B = _direction(mix)
    if state0 is None:
        Bpix = mix.mu_pixel()[0] - mix.mu_pixel()[1]
        Bpix = Bpix / np.linalg.norm(Bpix)
        state0 = initial_state(mix, m0=params.R0 * Bpix, b0=params.b0)
    spectral = isinstance(state0, SpectralState)
    if spectral != mix.spectral:
        raise ParameterError("state0 and mix must both be spectral (shared eigenbasis) or both full")

    if threat not in ("l2", "linf"):
        raise ParameterError(f"threat must be 'l2' or 'linf', got {threat!r}")
    step = rhs if threat == "l2" else rhs_linf

    def fun(_a, y):
        dm, dC, db = step(_unpack(y, N, spectral), mix, params, noise=noise, backend=backend)
        return np.concatenate([math.sqrt(N) * dm, N * np.ravel(dC), [db]])

    keys = list(QUANTITIES) + (["S_linf", "S_l1", "norm_l1", "norm_linf"] if lp else [])
    rec = {k: np.empty(alphas.size) for k in keys}

    def record(i, st):
        E, S, M, Q = errors(st, mix, params, eps_test)
        vals = {"E": E, "S": float(S), "M_plus": M[0], "M_minus": M[1], "Q_plus": Q[0], "Q_minus": Q[1],
                "b": st.b, "R": float(B @ st.m) if B is not None else math.nan}
        if lp:
            le = lp_errors(st, mix, params, eps_inf=lp.get("eps_inf", 0.0), eps_1=lp.get("eps_1", 0.0))
            vals.update({k: le[k] for k in ("S_linf", "S_l1", "norm_l1", "norm_linf")})
        for k in keys:
            rec[k][i] = vals[k]

    y = _pack(state0, N)
    a_now = 0.0
    nfev = 0
    t0 = time.perf_counter()
    for i, a in enumerate(alphas):
        if a > a_now:
            sol = solve_ivp(fun, (a_now, a), y, method=method, rtol=rtol, atol=atol)
            if not sol.success:
                raise RuntimeError(f"structured ODE solver failed: {sol.message}")
            y = sol.y[:, -1]
            nfev += int(sol.nfev)
            a_now = a
        record(i, _unpack(y, N, spectral))
    info = {"method": method, "rtol": rtol, "atol": atol, "nfev": nfev, "backend": backend, "noise": noise,
            "path": "spectral" if spectral else "full", "N": N, "wall_s": time.perf_counter() - t0}
    return StructuredTrajectory(params, eps_test, alphas, rec, _unpack(y, N, spectral), info)


# ----------------------------------------------------------------------------------------------------
# Monte Carlo of the same mixture (the full engine of simulate.mc) and the comparison
# ----------------------------------------------------------------------------------------------------
MC_QUANTITIES = ("E", "S", "M_plus", "M_minus", "Q_plus", "Q_minus")


def monte_carlo(mix: Mixture, params: Params, replicas: int, alphas, seed: int = 0, *,
                eps_test: float | None = None, progress: bool = False, threads: int | None = None) -> dict[str, Any]:
    """Replicas of the real N-dimensional SGD on inputs drawn from ``mix`` (:func:`simulate.mc.run_mc`).

    Shared eigenbasis with centred means (mu_- = -mu_+): the run is done in the eigenbasis, where the
    covariance is diagonal (the ``variances`` path of the numba engine; SGD is equivariant under the rotation
    and w(0) is isotropic, so the law of every rotation-invariant observable is the same).  Otherwise the
    ``sampler`` path draws xi = mu_tau + Sigma_tau^(1/2) z.  Every replica records M_tau = w.mu_tau,
    Q_tau = w'Sigma_tau w, |w|_1 and |w|_inf (pixel basis) and b; E and S are computed from them with the
    formulas of :func:`theory.structured.errors` (exact given w).  Returns {name: (len(alpha), replicas)},
    plus 'alpha', 'info' and 'w0' (replicas, N): each replica's w(0) in the pixel basis when alpha starts at
    0 (for the theory from the same initial conditions, :func:`theory_from_replicas`).
    """
    from ..linear.mc import run_mc

    eps_test = check_eps_test(eps_test, params)
    N = mix.N
    mu = mix.mu  # in the state's basis
    diff = mu[0] - mu[1]
    rho = float(np.linalg.norm(diff))
    if rho == 0:
        raise ParameterError("the class means must differ (mu_plus != mu_minus)")
    B = diff / rho
    centred = bool(np.allclose(mu[0], -mu[1], rtol=0, atol=1e-12 * max(rho, 1.0)))
    p = params.replace(rho=rho, R0=0.0)
    U = mix.U
    if mix.spectral:
        lam = mix.lam

        def quad_form(W):
            return (W * W) @ lam.T
    else:
        cov = mix.cov

        def quad_form(W):
            return np.stack([np.einsum("ri,ij,rj->r", W, S, W) for S in cov], axis=1)

    def pix(W):
        return W if U is None else W @ U.T

    initial: list[np.ndarray] = []

    def observe(W, b):
        Q = quad_form(W)
        Wp = pix(W)
        if not initial:  # the first call is at alpha = 0: each replica's own w(0), pixel basis
            initial.append(np.array(Wp))
        return {"M_plus": W @ mu[0], "M_minus": W @ mu[1], "Q_plus": Q[:, 0], "Q_minus": Q[:, 1],
                "norm_l1": np.abs(Wp).sum(axis=1), "norm_linf": np.abs(Wp).max(axis=1), "b": b}

    if mix.spectral and centred:
        res = run_mc(p, N, replicas, alphas, seed, eps_test=eps_test, variances=np.ascontiguousarray(mix.lam), B=B,
                     observe=observe, progress=progress, threads=threads)
        path = "variances (eigenbasis)"
    else:
        roots = []
        for k in range(2):
            lam_k, V = (mix.lam[k], None) if mix.spectral else np.linalg.eigh(mix.cov[k])
            lam_k = np.clip(lam_k, 0.0, None)
            roots.append(None if V is None else np.ascontiguousarray((V * np.sqrt(lam_k)).T))
            if V is None:
                roots[-1] = np.sqrt(lam_k)
        means = mu

        def sampler(rng, tau):
            z = rng.standard_normal((tau.size, N))
            out = np.empty_like(z)
            for k, t in enumerate((1.0, -1.0)):
                sel = tau == t
                L = roots[k]
                out[sel] = means[k] + (z[sel] * L if L.ndim == 1 else z[sel] @ L)
            return out

        sampler.__name__ = "gaussian_mixture"
        res = run_mc(p, N, replicas, alphas, seed, eps_test=eps_test, sampler=sampler, B=B, n_test=1,
                     observe=observe, progress=progress, threads=threads)
        path = "sampler"
    out = dict(res.info["observed"])
    Mv = (out["M_plus"], out["M_minus"])
    Qv = (out["Q_plus"], out["Q_minus"])
    out["E"], out["S"] = errors_from_order_parameters(Mv, Qv, out["b"], p.prior, eps_test)
    out["alpha"] = res.alpha
    out["w0"] = initial[0] if initial and res.alpha[0] == 0 else None
    out["info"] = {**{k: v for k, v in res.info.items() if k != "observed"}, "path": path, "N": N,
                   "replicas": replicas, "seed": seed, "eps_test": eps_test}
    return out


def theory_from_replicas(mix: Mixture, params: Params, mc: dict[str, Any], **kw) -> "StructuredTrajectory":
    """The theory averaged over the Monte Carlo replicas' own initial w (one trajectory per replica).

    When |mu_tau| is not small against sqrt(N), M_tau(0) = w(0).mu_tau differs between replicas by O(1), and
    the replica mean must be compared with the mean of the theory over the same starts (the theory from the
    isotropic m = 0 misses the spread, which matters on plateaus)."""
    from theory.structured import initial_state

    if mc.get("w0") is None:
        raise ParameterError("the Monte Carlo holds no initial weights (its alpha grid must start at 0)")
    p = params
    trajs = [integrate(mix, p, mc["alpha"], state0=initial_state(mix, w0=w0, b0=p.b0), eps_test=mc["info"]["eps_test"], **kw)
             for w0 in mc["w0"]]
    values = {k: np.mean([t.values[k] for t in trajs], axis=0) for k in trajs[0].values}
    info = {**trajs[0].solver, "starts": len(trajs), "wall_s": sum(t.solver["wall_s"] for t in trajs)}
    return StructuredTrajectory(p, trajs[0].eps_test, trajs[0].alpha, values, None, info)


#: finite-size allowance c in |MC - theory| <= q se + c/N per quantity (see tests/tolerances.py for the
#: measurements behind them)
MC_BIAS = {"E": 0.5, "S": 0.5, "M_plus": 1.0, "M_minus": 1.0, "Q_plus": 2.0, "Q_minus": 2.0}


def compare(traj: "StructuredTrajectory", mc: dict[str, Any], quantities=MC_QUANTITIES, bias=None,
            familywise: float | None = None):
    """:class:`simulate.compare.Comparison` of the replica means with the theory at every alpha > 0:
    |mean - theory| <= q se + c/N, q Sidak-corrected for all comparisons (the check of simulate.compare)."""
    from ..core.compare import TOLERANCES, Comparison, sidak_quantile

    bias = MC_BIAS if bias is None else bias
    familywise = TOLERANCES["familywise"] if familywise is None else familywise
    alpha = np.asarray(mc["alpha"])
    if traj.alpha.shape != alpha.shape or not np.allclose(traj.alpha, alpha, rtol=0, atol=1e-12):
        raise ParameterError("the theory trajectory and the Monte Carlo must share one alpha grid")
    keep = alpha > 0
    quantities = tuple(quantities)
    m = int(keep.sum()) * len(quantities)
    q = sidak_quantile(m, familywise)
    N = mc["info"]["N"]
    stats = {n: replica_stats(mc[n][keep]) for n in quantities}
    return Comparison(alpha=alpha[keep], ode={n: np.asarray(traj.values[n])[keep] for n in quantities},
                      mean={n: stats[n]["mean"] for n in quantities}, se={n: stats[n]["se"] for n in quantities},
                      allowance={n: bias[n] / N + TOLERANCES["solver"] for n in quantities}, q=q, m=m,
                      quantities=quantities)


# ----------------------------------------------------------------------------------------------------
# Synthetic anisotropic mixture
# ----------------------------------------------------------------------------------------------------
def powerlaw_mixture(N: int, *, rho: float = 2.0, power: float = 1.0, cutoff: float = 0.02, ratio: float = 1.0,
                     overlap: str = "spread", path: str = "spectral") -> Mixture:
    """A synthetic mixture with the power-law spectrum lambda_k proportional to (k/N + cutoff)^-power,
    normalised to tr Sigma = N: a fixed spectral density in x = k/N, so the eigenvalues stay O(1) as N grows
    (largest/smallest = ((1 + cutoff)/cutoff)^power; 51 for power 1 and the default cutoff 0.02).

    Means tau (rho/2) B, B = sum_k e_k/sqrt N ('spread' over all eigendirections) or 'top' (B = e_1, the
    largest eigenvalue); class -1 has ratio x the class +1 covariance.  ``path='full'`` gives the same
    mixture in the full form (for testing the full-matrix path).
    """
    if not (isinstance(N, (int, np.integer)) and N >= 2):
        raise ParameterError(f"N must be an integer >= 2, got {N!r}")
    for name, v in (("rho", rho), ("ratio", ratio)):
        if not (math.isfinite(v) and v > 0):
            raise ParameterError(f"{name} must be finite and > 0, got {v}")
    if not (math.isfinite(power) and power >= 0):
        raise ParameterError(f"power must be finite and >= 0, got {power}")
    if not (math.isfinite(cutoff) and cutoff > 0):
        raise ParameterError(f"cutoff must be finite and > 0, got {cutoff}")
    k = np.arange(1, N + 1, dtype=float)
    lam = (k / N + cutoff) ** (-power)
    lam *= N / lam.sum()
    if overlap == "spread":
        B = np.full(N, 1.0 / math.sqrt(N))
    elif overlap == "top":
        B = np.zeros(N)
        B[0] = 1.0
    else:
        raise ParameterError(f"overlap must be 'spread' or 'top', got {overlap!r}")
    mix = Mixture.from_spectrum(0.5 * rho * B, -0.5 * rho * B, lam, ratio * lam)
    if path == "full":
        return Mixture(mu=mix.mu.copy(), cov=np.stack([np.diag(mix.lam[0]), np.diag(mix.lam[1])]))
    return mix


# ----------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m simulate.structured",
                            description="Integrate the dynamics of online adversarial training on a Gaussian "
                                        "mixture with a power-law covariance spectrum (theory.structured).")
    add_param_arguments(parser, exclude=("v1", "v2"))
    g = parser.add_argument_group("mixture and run")
    g.add_argument("--N", type=number(int, 2, N_MAX, why="the spectral path holds N eigenvalues per cluster; "
                                                       f"the full path N x N matrices (N <= {N_MAX_FULL})"),
                   default=500, help="input dimension (>= 2) [500]")
    g.add_argument("--power", type=number(float, 0.0, 10.0, why="beyond 10 all variance sits in the first "
                                                                 "eigendirection to double precision"),
                   default=1.0, help="spectrum lambda_k ~ k^-power (>= 0) [1]")
    g.add_argument("--cutoff", type=number(float, 0.0, 10.0, lo_open=True,
                                           why="beyond 10 the spectrum is flat to a few per cent"),
                   default=0.02, help="spectrum (k/N + cutoff)^-power (> 0) [0.02]")
    g.add_argument("--ratio", type=number(float, 1e-4, 1e4, why="a variance ratio, as for v2/v1"),
                   default=1.0, help="Sigma_- = ratio * Sigma_+ (> 0) [1]")
    g.add_argument("--overlap", choices=("spread", "top"), default="spread",
                   help="B spread over all eigendirections or along the top one [spread]")
    g.add_argument("--path", choices=("spectral", "full"), default="spectral", help="state representation")
    g.add_argument("--mixture", type=Path, default=None, metavar="NPZ",
                   help="a mixture of your own instead of the power law: .npz with arrays mu_plus, mu_minus (N,), "
                        "Sigma_plus and optionally Sigma_minus (N, N); --path full forces the N x N path")
    g.add_argument("--alpha-max", type=real, default=100.0, help="final alpha (> 0) [100]")
    g.add_argument("--alpha-step", type=real, default=10.0, help="output spacing (> 0) [10]")
    g.add_argument("--eps-test", type=number(float, 0.0, 100.0, why="as eps: beyond 100 noise sd every example "
                                                                     "is flipped"),
                   default=None, help="test budget of S (>= 0) [training eps, or 1]")
    add_output_arguments(g, "write the trajectory (.json)")
    return parser


def _load_mixture(parser, path: Path, mode: str) -> Mixture:
    """A Mixture from an .npz (validated by Mixture.from_covariances; bad input ends with one line, exit 2)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.array(z[k]) for k in z.files}
    except (OSError, ValueError) as err:
        parser.error(f"--mixture: cannot read {path}: {str(err).splitlines()[0]}")
    missing = [k for k in ("mu_plus", "mu_minus", "Sigma_plus") if k not in arrays]
    if missing:
        parser.error(f"--mixture: {path} lacks the array(s) {', '.join(missing)}")
    return Mixture.from_covariances(arrays["mu_plus"], arrays["mu_minus"], arrays["Sigma_plus"],
                                    arrays.get("Sigma_minus"), path=mode)


@command
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    params = params_from_args(parser, args)
    if args.N < 2:
        parser.error(f"--N must be an integer >= 2, got {args.N}")
    for name in ("alpha_max", "alpha_step"):
        v = getattr(args, name)
        if not (math.isfinite(v) and v > 0):
            parser.error(f"--{name.replace('_', '-')} must be finite and > 0, got {v}")
    if args.eps_test is not None and not (math.isfinite(args.eps_test) and args.eps_test >= 0):
        parser.error(f"--eps-test must be finite and >= 0, got {args.eps_test}")
    if args.path == "full" and args.mixture is None and args.N > N_MAX_FULL:
        parser.error(f"--N: {args.N} is out of range for --path full (allowed: integer in [2, {N_MAX_FULL}]; "
                     "the full path holds N x N matrices)")
    with contextlib.ExitStack() as stack:
        with one_line_errors(parser):
            alphas = default_alphas(args.alpha_max, args.alpha_step)
            check_outputs(args, stack, out_suffixes=(".json",))
        return _run(parser, args, params, alphas)


def _run(parser, args, params, alphas) -> int:
    try:
        if args.mixture is not None:
            mix = _load_mixture(parser, args.mixture, "full" if args.path == "full" else "auto")
        else:
            mix = powerlaw_mixture(args.N, rho=params.rho, power=args.power, cutoff=args.cutoff, ratio=args.ratio,
                                   overlap=args.overlap, path=args.path)
        traj = integrate(mix, params, alphas, eps_test=args.eps_test)
    except ParameterError as err:
        parser.error(str(err))
    if not args.quiet:
        what = (f"mixture {args.mixture}" if args.mixture is not None
                else f"power={args.power:g}, ratio={args.ratio:g}")
        print(f"# structured dynamics ({traj.solver['path']} path, N={mix.N}, {what}); "
              f"S at eps_test={traj.eps_test:g}; {traj.solver['wall_s']:.2f} s")
        print(f"{'alpha':>8} {'E':>9} {'S':>9} {'M+':>9} {'M-':>9} {'Q+':>9} {'Q-':>9} {'b':>9}")
        for i, a in enumerate(traj.alpha):
            v = traj.values
            print(f"{a:8.4g} {v['E'][i]:9.6f} {v['S'][i]:9.6f} {v['M_plus'][i]:9.5f} {v['M_minus'][i]:9.5f} "
                  f"{v['Q_plus'][i]:9.5f} {v['Q_minus'][i]:9.5f} {v['b'][i]:9.5f}")
    if args.out is not None:
        write_json(args.out, {"provenance": provenance(params=params, seeds=None, N=args.N, power=args.power,
                                                       ratio=args.ratio, overlap=args.overlap, path=args.path),
                              "trajectory": traj.to_dict()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
