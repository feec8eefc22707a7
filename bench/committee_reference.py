"""A reference trajectory of the committee ODE on the large-learning-rate xor case, with a finer drift rule than the
default, for the trajectory test (tests/test_committee_trajectory.py).

The case is simulate.committee.mc.large_rate_case (xor, K = 4, eta_w 0.5, FGSM eps 0.5, v0 = (1, 1, -1, -1)).  The
reference integrates it with the transversal line rule ``--rule`` (default vline:4: lines along v, on which sigma is
monotone, one root split per line, composite Gauss-Legendre feet; theory.committee.quadrature.vline_nodes; a line
rule "line:N" is taken too, its inner rule then pinned to 12 Gauss-Legendre panels of 4 nodes on [-8, 8], 65 grid
points and 6 Newton steps; the default is line:6:6) and LSODA at ``--rtol`` 1e-6, ``--atol`` 1e-8 (the default's
tolerances), and writes the packed state at each alpha of ``--alphas`` with its provenance (parameters, rule,
solver, right-hand sides, CPU seconds, versions, git SHA).  The drift's estimated quadrature error at each stored
alpha (theory.committee.drift_error: twice the change against the next finer rule, vline:(M+2)) is stored beside it,
absolute and relative.

    python bench/committee_reference.py --overwrite     # rewrites tests/data/committee_large_rate_reference.json
    python bench/committee_reference.py --K 2 --rule vline:10 --rtol 1e-9 --atol 1e-11 --overwrite
                                                        # tests/data/committee_large_rate_k2_reference.json

One thread, vline:4: 337 right-hand sides, 2,149 CPU s (stated drift error 1.5e-4 at alpha 0, 5e-6 to 4e-5 at alpha
5 to 50); the former line:12 reference took 477 right-hand sides and 103 CPU s with a stated error of 8e-4 to 2e-3.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulate.core.cli import ArgumentParser  # noqa: E402

from simulate.committee import integrate, kernel_averages  # noqa: E402
from simulate.committee.mc import large_rate_case  # noqa: E402
from simulate.core.provenance import provenance, write_json  # noqa: E402
from theory.committee import drift_error, quadrature  # noqa: E402

#: the inner line rule of the reference (theory.committee.quadrature's LINE_* constants), pinned so that a later
#: change of the defaults does not change the reference
INNER = {"LINE_T": 8.0, "LINE_PANELS": 12, "LINE_GL": 4, "LINE_GRID": 65, "LINE_NEWTON": 6}
DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
DEFAULT_OUT = {4: DATA / "committee_large_rate_reference.json", 2: DATA / "committee_large_rate_k2_reference.json"}


def main(argv=None) -> int:
    ap = ArgumentParser(prog="python bench/committee_reference.py", description=__doc__)
    ap.add_argument("--rule", default="vline:4", help="drift rule of the reference [vline:4]")
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--atol", type=float, default=1e-8)
    ap.add_argument("--alphas", default="0,5,10,25,50", help="output alphas, comma-separated [0,5,10,25,50]")
    ap.add_argument("--K", type=int, default=4, choices=(2, 4),
                    help="hidden units: 4, or 2 (the first two units of the case) [4]")
    ap.add_argument("--out", type=Path, default=None,
                    help="[tests/data/committee_large_rate_reference.json, for --K 2 ..._k2_reference.json]")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    args.out = args.out or DEFAULT_OUT[args.K]
    if args.out.exists() and not args.overwrite:
        ap.error(f"--out {args.out} exists; pass --overwrite to replace it")
    for name, value in INNER.items():
        setattr(quadrature, name, value)
    p = large_rate_case(args.K)
    alphas = [float(a) for a in args.alphas.split(",")]
    c0 = time.process_time()
    traj = integrate(p, alphas, error_alphas=[], rule=args.rule, rtol=args.rtol, atol=args.atol,
                     progress=not args.quiet)
    cpu = time.process_time() - c0
    err_abs, err_rel = [], []
    for i in range(len(alphas)):
        y, err = drift_error(traj.state(i), p, args.rule, backend=kernel_averages)
        err_abs.append(float(np.max(err)))
        err_rel.append(float(np.max(err) / np.max(np.abs(y))))
    data = {"provenance": provenance(params=p, rule=args.rule, inner_line_rule=INNER, rtol=args.rtol,
                                     atol=args.atol, method=traj.solver["method"], nfev=traj.solver["nfev"],
                                     cpu_s=cpu),
            "names": traj.names, "alpha": traj.alpha, "y": traj.y, "drift_quad_error_abs": err_abs,
            "drift_quad_error_rel": err_rel}
    write_json(args.out, data)
    print(f"wrote {args.out}: {traj.solver['nfev']} right-hand sides, {cpu:.0f} CPU s; drift error estimate "
          f"(abs) {', '.join(f'{e:.1e}' for e in err_abs)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
