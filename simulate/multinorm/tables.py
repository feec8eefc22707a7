"""The end-state tables of the multinorm family: the theory at d and at d = infinity beside the stored Monte
Carlo, for every scheme and every parameter set, with the theory-vs-Monte-Carlo check over the whole trajectory.

    python -m simulate.multinorm.tables --out results/multinorm_endstates.json \\
        --markdown results/multinorm_endstates.md --overwrite

Reads Monte Carlo files written by :mod:`simulate.multinorm.endstates` (default: results/multinorm_mc*_d*.json,
two parameter sets at d = 1000 and 4000, a (set, d) possibly split over files by scheme), solves the theory (:func:`theory.multinorm.solve`) at each run's d and at
d = infinity on the run's alpha grid, and writes

* ``--out`` (JSON): the end states and the verdict of the comparison at every alpha > 0 and every quantity
  of :data:`simulate.multinorm.compare.QUANTITIES` (|MC mean - theory| <= q se + c/d + solver error, q
  Sidak-corrected over every comparison of the file, tolerances of tests/tolerances.py as passed in) with
  the comparisons that failed, per parameter set, d and scheme; the theory's trajectories of
  :data:`TRAJECTORIES` at d and at infinity (once per set and scheme), rounded to :data:`DECIMALS` decimals;
  provenance.  Written compactly (one row or run per line);
* ``--markdown``: the end-state table (alpha = alpha_max) of each parameter set, w0, L1 and the clean, l_inf,
  l_1 and union accuracies, theory / Monte Carlo, the union at d = infinity and the verdict of the check:
  the table that docs/multinorm.md and the README quote (copied verbatim, checked by a test).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from theory.multinorm import SCHEMES, MultinormParams

from ..core.cli import ArgumentParser, add_output_arguments, check_outputs, command, one_line_errors
from ..core.provenance import atomic_write, check_output, provenance, to_jsonable
from .compare import QUANTITIES, compare, n_comparisons
from .endstates import StoredRun, load_runs

__all__ = ["DEFAULT_MC", "TOLERANCES", "TRAJECTORIES", "DECIMALS", "tables_body", "write_compact_json", "theory_on", "check_runs", "end_rows", "markdown", "union_markdown",
           "set_name", "compute", "default_mc", "main"]

ROOT = Path(__file__).resolve().parent.parent.parent
#: the stored Monte Carlo runs (simulate.multinorm.endstates; a (set, d) may be split over files by scheme):
#: the default parameter set and a second one, at d = 1000 and 4000
DEFAULT_MC = "results/multinorm_mc*_d*.json"


def default_mc() -> list[Path]:
    return sorted(ROOT.glob(DEFAULT_MC))
#: the check's tolerances when none are passed: those of tests/tolerances.py (MULTINORM_VS_THEORY), repeated
#: here so that the command does not import the tests; tests/test_multinorm_vs_theory.py checks they agree
TOLERANCES = {"familywise": 1e-3, "bias_c": 2.0, "solver": 1e-4}
ACC = {"acc_clean": "E", "acc_inf": "S_inf", "acc_1": "S_1", "acc_union": "union"}
END_COLUMNS = (("w0", "w0"), ("L1", "L1"), ("clean", "acc_clean"), ("l_inf", "acc_inf"), ("l_1", "acc_1"),
               ("union", "acc_union"))


#: the theory's trajectories kept in ``--out`` (what tests/test_multinorm_vs_theory.py reads back: the distance
#: to d = infinity of the Monte Carlo and of the theory at d); the end states of every column are in the rows
TRAJECTORIES = ("w0", "L1", "union")
#: the trajectories are rounded to this many decimals (|rounding error| <= 5e-8, far below the check's solver
#: allowance 1e-4 and the 1e-3 resolution of the tests that read them); the rows keep full precision
DECIMALS = 7


def theory_on(run: StoredRun, d) -> dict[str, np.ndarray]:
    """The theory's trajectory at d (an integer or math.inf) on the run's alphas, with the accuracies."""
    from theory.multinorm import ParameterError, solve

    # std and adv_2: the law stays Gaussian and the moment ODE is the exact reduction (tested against the
    # particle solver to 1e-8 in tests/test_multinorm_theory.py); every other scheme by finite volumes
    method = "moments" if run.params.scheme in ("std", "adv_2") else "fv"
    # 'max' at finite d: the replicas' mean near the switching surface (docs/multinorm.md, "'max' near its
    # switching surface at finite d"), refused where the state slides on the surface: then the mean field
    replica_mean = run.params.scheme == "max" and not math.isinf(d)
    if replica_mean:
        try:
            sol = solve(run.params, run.alpha, d, method=method, snapshots=False, replica_mean=True)
        except ParameterError as err:
            if "slides" not in str(err):
                raise
            replica_mean = False
    if not replica_mean:
        sol = solve(run.params, run.alpha, d, method=method, snapshots=False)
    out = {k: np.asarray(v, dtype=float) for k, v in sol.items() if k in ("alphas", *QUANTITIES, "Q")}
    out["replica_mean"] = np.asarray(float(replica_mean))
    for k, q in ACC.items():
        out[k] = 1.0 - out[q]
    out["cpu_s"] = np.asarray(sol.get("cpu_s", np.nan), dtype=float)
    return out


def set_name(params: MultinormParams) -> str:
    """'issue' for the issue's parameter set (the defaults), else the fields that differ."""
    diff = {k: v for k, v in params.as_dict().items() if k != "scheme" and v != getattr(MultinormParams(), k)}
    return "issue" if not diff else ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                              for k, v in diff.items())


def check_runs(runs: dict[tuple[str, int, str], StoredRun], theories: dict, tol: dict) -> dict[tuple, Any]:
    """The comparison of every run with its theory at d, one Sidak family over all of them."""
    m = sum(n_comparisons(r) for r in runs.values())
    bias = {q: tol["bias_c"] for q in QUANTITIES}
    return {key: compare(theories[key], r, bias_c=bias, familywise=tol["familywise"], m=m,
                         solver_error=tol["solver"]) for key, r in runs.items()}


def worst(cmp) -> tuple[float, str]:
    """The largest |MC - theory| / (q se + allowance) of a comparison, and where ('quantity at alpha')."""
    best, where = 0.0, ""
    for q in cmp.quantities:
        dev = np.abs(cmp.mean[q] - cmp.ode[q])
        ratio = dev / (cmp.q * cmp.se[q] + cmp.allowance[q])
        i = int(np.argmax(ratio))
        if ratio[i] > best:
            best, where = float(ratio[i]), f"{q} at alpha {cmp.alpha[i]:g}"
    return best, where


def end_rows(runs, theories, theories_inf, checks) -> list[dict[str, Any]]:
    """One row per (set, d, scheme): the end state (last alpha) of the theory at d, of the Monte Carlo (mean,
    s.e.) and of the theory at d = infinity, and the check's verdict."""
    rows = []
    for key, r in runs.items():
        name, d, s = key
        th, thi = theories[key], theories_inf[key]
        ratio, where = worst(checks[key])
        row = {"set": name, "d": d, "scheme": s, "alpha": float(r.alpha[-1]), "replicas": r.replicas,
               "passed": bool(checks[key].passed), "worst_ratio": ratio, "worst_at": where,
               "replica_mean": bool(th.get("replica_mean", 0.0))}
        for col, k in END_COLUMNS:
            row[f"{col}_theory"] = float(th[k][-1])
            row[f"{col}_mc"] = float(r.mean(k)[-1])
            row[f"{col}_mc_se"] = float(r.se(k)[-1])
            row[f"{col}_theory_inf"] = float(thi[k][-1])
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]], tol: dict, q: float, m: int) -> str:
    """The end-state tables, one per parameter set: theory at d / Monte Carlo at d for each column."""
    out = []
    for name in dict.fromkeys(r["set"] for r in rows):
        sel = [r for r in rows if r["set"] == name]
        se_max = max(r[f"{c}_mc_se"] for r in sel for c, _ in END_COLUMNS)
        reps = sorted({r["replicas"] for r in sel})
        out.append(f"**{'The issue’s parameter set' if name == 'issue' else 'Second set: ' + name}** "
                   f"(alpha = {sel[0]['alpha']:g}; each cell theory at d / Monte Carlo at d, "
                   f"{'/'.join(map(str, reps))} replicas, standard errors ≤ {se_max:.1g}):")
        out.append("")
        out.append("| scheme | d | w0 | L1 | clean | l_inf | l_1 | union | union, theory d = ∞ | theory vs MC, "
                   "all alphas |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for s in SCHEMES:
            for r in (r for r in sel if r["scheme"] == s):
                cells = [f"{r[f'{c}_theory']:.3f} / {r[f'{c}_mc']:.3f}" for c, _ in END_COLUMNS]
                verdict = ("pass" if r["passed"] else "FAIL") + f" ({r['worst_ratio']:.2f})" + \
                    (" †" if r.get("replica_mean") else "")
                out.append(f"| {s} | {r['d']} | " + " | ".join(cells) + f" | {r['union_theory_inf']:.3f} | "
                           f"{verdict} |")
        out.append("")
    out.append(f"Check: at every alpha > 0 and each of {', '.join(QUANTITIES)}, |MC − theory| ≤ q·se + "
               f"{tol['bias_c']:g}/d + {tol['solver']:g}, q = {q:.2f} (Šidák over all {m} comparisons of the "
               f"table, familywise {tol['familywise']:g}); in brackets the largest |MC − theory| / (q·se + "
               f"{tol['bias_c']:g}/d + {tol['solver']:g}) of the run (≤ 1 passes)."
               + (" † 'max': the theory's mean of the replicas near the switching surface "
                  "(`solve(..., replica_mean=True)`), where it applies." if any(r.get("replica_mean") for r in rows)
                  else "")
               + " Written by `python -m simulate.multinorm.tables`.")
    return "\n".join(out) + "\n"


def union_markdown(rows: list[dict[str, Any]]) -> str:
    """The union accuracy at the last alpha of every scheme, both d and d = infinity, one column group per
    parameter set (the README's table)."""
    names = list(dict.fromkeys(r["set"] for r in rows))
    ds = sorted({r["d"] for r in rows})
    by = {(r["set"], r["d"], r["scheme"]): r for r in rows}
    head = ["scheme"]
    for name in names:
        label = "issue's set" if name == "issue" else "second set"
        head += [f"{label}, d = {d}" for d in ds] + [f"{label}, d = ∞"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in SCHEMES:
        cells = [s]
        for name in names:
            for d in ds:
                r = by.get((name, d, s))
                cells.append("–" if r is None else f"{r['union_theory']:.3f} / {r['union_mc']:.3f}")
            r = by.get((name, ds[0], s))
            cells.append("–" if r is None else f"{r['union_theory_inf']:.3f}")
        out.append("| " + " | ".join(cells) + " |")
    alpha = rows[0]["alpha"]
    out.append("")
    out.append(f"Union accuracy at alpha = {alpha:g}, theory at d / Monte Carlo at d (written by "
               "`python -m simulate.multinorm.tables`; the full tables and the check: docs/multinorm.md).")
    return "\n".join(out) + "\n"


def theory_source_key() -> str:
    """SHA-256 of the theory package's source (every theory/**/*.py): a cached solve is reused only while the
    code that computed it is unchanged."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted((ROOT / "theory").rglob("*.py")):
        h.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


#: part of the cache key: what :func:`theory_on` computes (2: 'max' at finite d with replica_mean)
CACHE_VERSION = 2


def _cached(cache: Path | None, run: StoredRun, d, source: str):
    """theory_on(run, d), memoised in ``cache`` (NPZ per parameters, d, alpha grid and theory source)."""
    if cache is None:
        return theory_on(run, d)
    import hashlib

    key = hashlib.sha256(f"{run.params.key()}|{d}|{run.alpha.tobytes().hex()}|{source}|{CACHE_VERSION}"
                         .encode()).hexdigest()[:32]
    path = cache / f"theory_{key}.npz"
    if path.is_file():
        with np.load(path) as npz:
            return {k: npz[k] for k in npz.files}
    out = theory_on(run, d)
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        np.savez(f, **out)
    return out


def compute(paths, tol: dict, progress: bool = True, cache: Path | None = None):
    """(runs, theories at d, theories at infinity, checks, rows); ``cache``: a folder memoising the solves."""
    from ..core.cli import progress_bar

    runs: dict[tuple[str, int, str], StoredRun] = {}
    for path in paths:
        for (d, s), r in load_runs(path).items():
            runs[(set_name(r.params), d, s)] = r
    source = theory_source_key() if cache is not None else ""
    theories, theories_inf, limits = {}, {}, {}
    with progress_bar(2 * len(runs), "theory", show=progress, unit="solve") as bar:
        for key, r in runs.items():
            t0 = time.process_time()
            theories[key] = _cached(cache, r, key[1], source)
            theories[key]["cpu_s"] = np.asarray(time.process_time() - t0)
            bar.update()
            # one limit per (set, scheme, alpha grid): the runs at different d share it
            lkey = (key[0], key[2], r.alpha.tobytes())
            if lkey not in limits:
                limits[lkey] = _cached(cache, r, math.inf, source)
            theories_inf[key] = limits[lkey]
            bar.update()
    checks = check_runs(runs, theories, tol)
    return runs, theories, theories_inf, checks, end_rows(runs, theories, theories_inf, checks)


def tables_body(runs, theories, theories_inf, checks, rows, tol: dict) -> dict[str, Any]:
    """The content of ``--out``: ``rows`` (:func:`end_rows`), the tolerances and the Sidak quantile; ``runs``
    {"set | d | scheme": alphas, the theory's :data:`TRAJECTORIES` at d, the key of its limit, the solve's
    CPU seconds, the failed comparisons}; ``limits`` {"set | scheme": the :data:`TRAJECTORIES` at d =
    infinity}.  Trajectories rounded to :data:`DECIMALS` decimals."""
    def traj(th):
        return {q: np.round(np.asarray(th[q], dtype=float), DECIMALS).tolist() for q in TRAJECTORIES}

    any_check = next(iter(checks.values()))
    out_runs, limits = {}, {}
    for k, r in runs.items():
        lkey = f"{k[0]} | {k[2]}"
        lim = traj(theories_inf[k])
        if limits.setdefault(lkey, lim) != lim:
            raise ValueError(f"{lkey}: the runs at different d have different alpha grids; one limit each needed")
        out_runs[f"{k[0]} | {k[1]} | {k[2]}"] = {
            "alphas": r.alpha.tolist(), "theory": traj(theories[k]), "limit": lkey,
            "cpu_s": float(theories[k].get("cpu_s", np.nan)), "failures": checks[k].failures()}
    return {"rows": rows, "tolerances": tol, "q": any_check.q, "m": any_check.m,
            "trajectories": {"quantities": list(TRAJECTORIES), "decimals": DECIMALS}, "runs": out_runs,
            "limits": limits}


def write_compact_json(path, body: dict[str, Any]) -> None:
    """Atomically write ``body`` as JSON with one line per top-level key and, inside a top-level list or dict,
    one line per item (a row, a run, a limit): readable in a diff at a fraction of the indented size."""
    def one(v):
        return json.dumps(to_jsonable(v), ensure_ascii=False, allow_nan=True)

    parts = []
    for key, value in body.items():
        if isinstance(value, list) and value:
            inner = ",\n  ".join(one(v) for v in value)
            parts.append(f" {one(key)}: [\n  {inner}\n ]")
        elif isinstance(value, dict) and value:
            inner = ",\n  ".join(f"{one(k)}: {one(v)}" for k, v in value.items())
            parts.append(f" {one(key)}: {{\n  {inner}\n }}")
        else:
            parts.append(f" {one(key)}: {one(value)}")
    with atomic_write(path) as f:
        f.write("{\n" + ",\n".join(parts) + "\n}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m simulate.multinorm.tables",
                            description="The multinorm end-state tables: theory at d and at d = inf beside the "
                                        "stored Monte Carlo, with the theory-vs-Monte-Carlo check of every run.")
    parser.add_argument("--mc", type=Path, nargs="+", default=None, metavar="JSON",
                        help=f"Monte Carlo files of simulate.multinorm.endstates [{DEFAULT_MC} of the checkout]")
    add_output_arguments(parser.add_argument_group("output"), "write theories, checks and rows as JSON")
    parser.add_argument("--markdown", type=Path, default=None, metavar="MD",
                        help="write the end-state tables as markdown (docs/multinorm.md quotes it; --overwrite applies)")
    parser.add_argument("--markdown-union", type=Path, default=None, metavar="MD",
                        help="write the union-accuracy table as markdown (the README quotes it; --overwrite applies)")
    parser.add_argument("--cache", type=Path, default=None, metavar="DIR",
                        help="memoise each theory solve in DIR (keyed by the parameters, d, the alpha grid and the "
                             "SHA-256 of theory/**/*.py, so a changed theory is solved again) [none]")
    return parser


@command
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        with one_line_errors(parser):
            check_outputs(args, stack, out_suffixes=(".json",))
        if args.mc is None:
            args.mc = default_mc()
        for p in args.mc:
            try:
                load_runs(p)
            except (OSError, ValueError, KeyError, TypeError) as err:
                parser.error(f"--mc: {str(p)!r} is not a readable file of simulate.multinorm.endstates "
                             f"({type(err).__name__}: {err})")
            for flag in ("markdown", "markdown_union"):
                if getattr(args, flag) is not None:
                    check_output(getattr(args, flag), flag="--" + flag.replace("_", "-"), suffixes=(".md",),
                                 overwrite=args.overwrite)
        with one_line_errors(parser):
            runs, theories, theories_inf, checks, rows = compute(args.mc, TOLERANCES, progress=not args.quiet,
                                                                 cache=args.cache)
        any_check = next(iter(checks.values()))
        text = markdown(rows, TOLERANCES, any_check.q, any_check.m)
        if not args.quiet:
            print(text)
        if args.out is not None:
            body = tables_body(runs, theories, theories_inf, checks, rows, TOLERANCES)
            prov = provenance(params={name: r.params.replace(scheme="std").as_dict()
                                      for (name, _, _), r in runs.items()},
                              inputs=[str(p) for p in args.mc])
            write_compact_json(args.out, {**body, "provenance": prov})
        for path, body_text in ((args.markdown, text), (args.markdown_union, union_markdown(rows))):
            if path is not None:
                with atomic_write(path) as f:
                    f.write(body_text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
