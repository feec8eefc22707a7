"""Behaviour check across a refactor: hashes of ODE trajectories, fixed-seed Monte Carlo, committee, structured,
sweep, trade-off and protocol results, computed through the public names that every version keeps.

    python bench/bit_identity.py --out bench/out/bit_identity_NEW.json
    python bench/bit_identity.py --compare OLD.json NEW.json        # one line a case: same / DIFFERENT

Run it in the old checkout and in the new one (each with PYTHONPATH at its root) and compare: every hash is
the SHA-256 of the arrays' raw bytes (with dtype and shape), so "same" means bit-identical.  Single thread
(NUMBA_NUM_THREADS=1, set here before numba loads), a few minutes on one core.

Give each run an empty NUMBA_CACHE_DIR: on this machine a numba kernel loaded from the cache gives Monte Carlo
results that differ in the last bits from the same kernel compiled fresh (seen for the linear full engine and
the committee engine; same source, same seed), so only runs that both compile fresh are comparable.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:32]


def json_digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:32]


def cases():
    """Yield (name, function returning a hash)."""
    from theory import Params, fixed_points, jacobian, rhs
    from theory.committee import CommitteeParams

    alphas = np.linspace(0.0, 40.0, 21)

    def ode(kw):
        from simulate.ode import integrate
        t = integrate(Params(**kw), alphas)
        return digest(t.alpha, t.R, t.b, t.E, t.S)

    for kw in ({}, {"eps": 1.0, "prior": 0.7}, {"eps": 1.0, "eps_law": "exponential", "loss": "cross_entropy"},
               {"eps": 0.5, "non_robust_only": True, "rho": 1.5}, {"eps": 0.8, "eps_law": "uniform"}):
        yield f"linear ODE {kw}", (lambda kw=kw: ode(kw))

    def grid():
        from simulate.ode import integrate_grid
        R, b = integrate_grid(alphas, rho=np.array([1.0, 2.0, 3.0]), eps=np.array([[0.0], [1.0]]), prior=0.7,
                              v1=1.0, v2=1.0, eta_w=0.04, eta_b=0.2)
        return digest(R, b)
    yield "linear ODE grid (vectorised)", grid

    def theory_points():
        p = Params(eps=1.0, prior=0.7)
        pts = [(0.1, 0.0), (0.5, -0.3), (0.9, 0.4)]
        out = [np.array(rhs(R, b, p)) for R, b in pts] + [jacobian(R, b, p) for R, b in pts]
        fps = fixed_points(p)
        return digest(*out, *[np.array([f.R, f.b]) for f in fps])
    yield "linear theory rhs / jacobian / fixed points", theory_points

    def mc(engine):
        from simulate.mc import run_mc
        r = run_mc(Params(eps=1.0, prior=0.7), N=200, replicas=4, alphas=[0.0, 1.0, 3.0], seed=11, engine=engine,
                   n_test=500, progress=False)
        return digest(r.alpha, r.steps, r.R, r.b, r.E, r.S)
    for engine in ("full", "reduced"):
        yield f"linear MC {engine} seed 11", (lambda e=engine: mc(e))

    def committee_ode():
        from simulate.committee import integrate
        t = integrate(CommitteeParams(K=2, eps=0.3, prior=0.7), np.linspace(0.0, 10.0, 6))
        return digest(t.alpha, t.y, t.E, t.S)
    yield "committee ODE K=2", committee_ode

    def committee_mc():
        from simulate.mc_committee import run_committee_mc
        r = run_committee_mc(CommitteeParams(K=2, eps=0.3), N=100, replicas=2, alphas=[0.0, 1.0, 2.0], seed=5,
                             n_test=200, progress=False)
        return digest(r.alpha, r.steps, *[r.data[k] for k in sorted(r.data)])
    yield "committee MC seed 5", committee_mc

    def structured_ode():
        from simulate.structured import integrate, powerlaw_mixture
        t = integrate(powerlaw_mixture(40, power=1.0), Params(eps=1.0), np.linspace(0.0, 10.0, 6))
        return digest(t.alpha, *[t.values[k] for k in sorted(t.values)])
    yield "structured ODE N=40", structured_ode

    def structured_mc():
        from simulate.structured import monte_carlo, powerlaw_mixture
        r = monte_carlo(powerlaw_mixture(40, power=1.0), Params(eps=1.0), 3, np.linspace(0.0, 4.0, 3), seed=7)
        return digest(*[np.asarray(r[k]) for k in sorted(r) if isinstance(r[k], np.ndarray)])
    yield "structured MC seed 7", structured_mc

    def sweep(engine, specs, options, base=None):
        from simulate.sweep import make_grid, run_sweep
        from simulate.sweep_engines import get_engine
        eng = get_engine(engine)
        ds, _ = run_sweep(eng, make_grid(specs, base or Params(prior=0.7), eng), options, progress=False)
        return digest(*[ds[v].values for v in sorted(ds.data_vars)])
    yield "sweep ode rho x eps", lambda: sweep("ode", ["rho=0.5:3:4", "eps=0:2:3"], {"alphas": [10.0, 50.0]})
    yield "sweep ode eps, uniform law, cross-entropy", lambda: sweep(
        "ode", ["eps=0.2:1.5:3", "rho=1,2"], {"alphas": [5.0, 20.0]}, Params(prior=0.7, eps_law="uniform",
                                                                             loss="cross_entropy"))
    def multinorm_sweep():
        from theory.multinorm.params import MultinormParams
        return sweep("multinorm_mc", ["scheme=avg,max"], {"alphas": [1.0, 2.0], "d": 30, "replicas": 2, "seed": 1},
                     MultinormParams())
    yield "sweep multinorm_mc scheme", multinorm_sweep
    yield "sweep mc eps", lambda: sweep("mc", ["eps=0,1"], {"alphas": [2.0], "N": 100, "replicas": 2, "seed": 3})

    def multinorm_mc(scheme):
        from simulate.multinorm.mc import run_multinorm_mc
        from theory.multinorm.params import MultinormParams
        r = run_multinorm_mc(MultinormParams(scheme=scheme), 40, 3, [0.0, 1.0, 3.0], 5, progress=False)
        return digest(r.alpha, r.steps, *[r.data[k] for k in sorted(r.data)])
    for scheme in ("avg", "max"):
        yield f"multinorm MC {scheme} seed 5", (lambda s=scheme: multinorm_mc(s))

    def tradeoff():
        from simulate.tradeoff import main
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "t.json"
            main(["lp", "--d", "50", "--a", "1", "2", "--p0", "0.9", "--out", str(out), "--quiet"])
            data = json.loads(out.read_text())
        data.pop("provenance", None)
        return json_digest(data)
    yield "tradeoff lp table", tradeoff

    def protocol():
        from simulate.protocol import Problem, evaluate
        prob = Problem(Params(prior=0.7), alpha_F=10.0, segments=4)
        J, g = evaluate(prob, np.array([0.2, 1.0, 1.5, 0.5]))
        return digest(np.array(J), np.asarray(g))
    yield "protocol objective and gradient", protocol


def run(out: Path, only: str | None = None) -> int:
    sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    result = {"git_sha": sha, "python": sys.version.split()[0], "numpy": np.__version__, "cases": {}}
    for name, fn in cases():
        if only is not None and only not in name:
            continue
        t0 = time.perf_counter()
        try:
            result["cases"][name] = fn()
        except Exception as exc:  # a case that fails is recorded as such, not hidden
            result["cases"][name] = f"ERROR {type(exc).__name__}: {exc}"
        print(f"{time.perf_counter() - t0:7.1f} s  {name}: {result['cases'][name]}", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


def compare(a: Path, b: Path) -> int:
    A, B = json.loads(a.read_text()), json.loads(b.read_text())
    bad = 0
    print(f"{A['git_sha'][:10]} vs {B['git_sha'][:10]}")
    for name in sorted(set(A["cases"]) | set(B["cases"])):
        x, y = A["cases"].get(name), B["cases"].get(name)
        same = x == y and x is not None and not str(x).startswith("ERROR")
        bad += not same
        print(f"{'same     ' if same else 'DIFFERENT'}  {name}" + ("" if same else f"  ({x} / {y})"))
    print(f"{len(set(A['cases']) | set(B['cases'])) - bad} same, {bad} different")
    return 1 if bad else 0


def main(argv=None) -> int:
    from simulate.core.cli import ArgumentParser  # one-line errors, whole flag names only

    ap = ArgumentParser(prog="python bench/bit_identity.py", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("OLD", "NEW"))
    ap.add_argument("--only", default=None, metavar="TEXT", help="run only the cases whose name contains TEXT")
    args = ap.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    if args.out is None:
        ap.error("--out or --compare is required")
    return run(args.out, args.only)


if __name__ == "__main__":
    raise SystemExit(main())
