"""Monte Carlo trajectories of all seven schemes at several d, for the family's tables, figures and tests.

    python -m simulate.multinorm.endstates --d 1000 4000 --replicas 16 --out results/multinorm_mc.json

Runs :func:`simulate.multinorm.mc.run_multinorm_mc` for every scheme of :data:`theory.multinorm.SCHEMES` and
every d (one parameter set, the flags of :class:`theory.multinorm.MultinormParams` other than --scheme), on
the grid alpha = 0, 1, ..., alpha_max, and writes one JSON: per (d, scheme) the lists over alphas of the
replica mean and standard error of every recorded quantity (:data:`simulate.multinorm.mc.QUANTITIES`), and
the provenance.  Prints the end-state table (alpha = alpha_max): w0, L1 and the clean, l_inf, l_1 and union
accuracies, mean ± standard error.  Each (d, scheme) run has its own seed, SeedSequence([seed, d, k]) with k
the scheme's index, so adding a d or a scheme leaves the others unchanged.  Replica r's trajectory does not
depend on the number of replicas (``SeedSequence.spawn``), so a run with more replicas extends a stored one:
``--check-prefix OLD.json`` recomputes the statistics of the first M_old replicas of every (d, scheme) that OLD
holds and requires them to equal OLD's bit for bit (exit 1 with one line otherwise); the output records it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np

from theory.multinorm import SCHEMES, MultinormParams

from ..core.cli import (ArgumentParser, add_output_arguments, add_param_arguments, check_outputs, command, number,
                   one_line_errors, params_from_args)
from ..core.outputs import read_json
from ..core.provenance import provenance, write_json
from .mc import run_multinorm_mc

__all__ = ["run_schemes", "scheme_seed", "end_table", "main", "StoredRun", "load_runs", "SECOND_SET",
           "PrefixMismatch", "prefix_differences"]

#: the family's second parameter set (docs/multinorm.md says why): e < 2a and eps1 < 2, so no classifier is bound
#: to union accuracy 1/2 as at the default parameters; a less reliable robust feature, a larger
#: initial w0, larger learning rates and the cross-entropy loss
SECOND_SET = MultinormParams(a=1.5, p0=0.8, e=2.0, eps1=1.0, eps2=0.5, eta_w=0.5, eta_b=0.3, w0=0.4,
                             loss="cross_entropy")


def scheme_seed(seed: int, d: int, scheme: str) -> int:
    """The root seed of one (d, scheme) run."""
    return int(np.random.SeedSequence([int(seed), int(d), SCHEMES.index(scheme)]).generate_state(1, np.uint64)[0])


class PrefixMismatch(ValueError):
    """The first replicas of a run do not reproduce the stored run they should extend."""


def prefix_differences(new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    """The keys whose lists differ between two summaries (``new`` over ``old``'s alphas, bit for bit), and
    'seed' if the seeds differ."""
    n = len(old["alphas"])
    bad = [k for k, v in old.items() if isinstance(v, list) and new.get(k, [])[:n] != v]
    return (["seed"] if new.get("seed") != old.get("seed") else []) + bad


def run_schemes(params: MultinormParams, ds, replicas: int, alpha_max: float, seed: int, schemes=SCHEMES,
                alpha_step: float = 1.0, progress: bool = True, threads: int | None = None,
                prefix: dict[str, Any] | None = None) -> dict[str, Any]:
    """{str(d): {scheme: summary}} with each summary that of :meth:`MultinormMCResult.summary` plus the seed
    and the wall time.  ``prefix``: the ``runs`` of a stored file with fewer replicas; each (d, scheme) it
    holds is checked (:func:`prefix_differences` of the first replicas' summary) and the summary records
    ``prefix_check``; a difference raises :class:`PrefixMismatch`."""
    alphas = np.arange(0.0, alpha_max + 0.5 * alpha_step, alpha_step)
    out: dict[str, Any] = {}
    for d in ds:
        out[str(d)] = {}
        for s in schemes:
            sd = scheme_seed(seed, d, s)
            res = run_multinorm_mc(params.replace(scheme=s), d, replicas, alphas, sd, progress=progress,
                                   threads=threads)
            summ = {**res.summary(), "seed": sd, "replicas": replicas, "wall_s": res.info["wall_s"]}
            old = (prefix or {}).get(str(d), {}).get(s)
            if old is not None:
                m = int(old["replicas"])
                if m > replicas or len(old["alphas"]) > len(summ["alphas"]):
                    raise PrefixMismatch(f"d = {d}, {s}: the stored run has {m} replicas and "
                                         f"{len(old['alphas'])} alphas, more than this run")
                first = dataclasses.replace(res, replicas=m, data={q: v[:, :m] for q, v in res.data.items()})
                bad = prefix_differences({**first.summary(), "seed": sd}, old)
                if bad:
                    raise PrefixMismatch(f"d = {d}, {s}: the first {m} replicas differ from the stored run in "
                                         + ", ".join(bad))
                summ["prefix_check"] = {"replicas": m, "alphas": len(old["alphas"]), "identical": True}
            out[str(d)][s] = summ
    return out


class StoredRun:
    """One (d, scheme) run read back from a file of :func:`main`: the replica means and standard errors over
    alphas, with the interface of :class:`simulate.multinorm.mc.MultinormMCResult` that the comparisons use
    (``alpha``, ``d``, ``replicas``, ``mean(q)``, ``se(q)``, ``std(q)``)."""

    def __init__(self, params: MultinormParams, d: int, summary: dict[str, Any]):
        self.params, self.d, self.summary = params, int(d), summary
        self.replicas = int(summary["replicas"])
        self.alpha = np.asarray(summary["alphas"], dtype=float)

    @property
    def N(self) -> int:
        return self.d + 1

    def mean(self, q: str) -> np.ndarray:
        return np.asarray(self.summary[q], dtype=float)

    def se(self, q: str) -> np.ndarray:
        return np.asarray(self.summary[q + "_se"], dtype=float)

    def std(self, q: str) -> np.ndarray:
        return self.se(q) * np.sqrt(self.replicas)

    def index(self, alpha: float) -> int:
        idx = np.flatnonzero(np.isclose(self.alpha, alpha, rtol=0, atol=0.5 / self.N))
        if idx.size == 0:
            raise KeyError(f"alpha = {alpha} is not on the output grid")
        return int(idx[0])


def load_runs(path) -> dict[tuple[int, str], StoredRun]:
    """{(d, scheme): StoredRun} of a file written by :func:`main` (the parameters from its provenance)."""
    data = read_json(path)
    base = MultinormParams(**data["provenance"]["params"])
    return {(int(d), s): StoredRun(base.replace(scheme=s), int(d), summ)
            for d, per in data["runs"].items() for s, summ in per.items()}


def end_table(runs: dict[str, Any]) -> str:
    """The end states (last alpha): w0, L1, clean, l_inf, l_1, union accuracy, mean ± s.e., per d and scheme."""
    cols = (("w0", "w0"), ("L1", "L1"), ("clean", "acc_clean"), ("l_inf", "acc_inf"), ("l_1", "acc_1"),
            ("union", "acc_union"))
    lines = [f"{'d':>6} {'scheme':>8} " + " ".join(f"{c:>17}" for c, _ in cols)]
    for d, per in runs.items():
        for s, r in per.items():
            lines.append(f"{d:>6} {s:>8} " + " ".join(f"{r[k][-1]:8.4f} ± {r[k + '_se'][-1]:6.4f}" for _, k in cols))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m simulate.multinorm.endstates",
                            description="Monte Carlo of all seven schemes at several d: trajectories and the "
                                        "end-state table (w0, L1, clean / l_inf / l_1 / union accuracy).")
    add_param_arguments(parser, exclude=("scheme",), params_cls=MultinormParams)
    run = parser.add_argument_group("run")
    run.add_argument("--d", type=number(int, 2, 1 << 24), nargs="+", default=[1000, 4000], metavar="D",
                     help="numbers of weak features [1000 4000]")
    run.add_argument("--replicas", type=number(int, 2, 1 << 16), default=16, metavar="M", help="replicas [16]")
    run.add_argument("--alpha-max", type=number(float, 0.0, 1e3, lo_open=True), default=50.0, metavar="X",
                     help="final alpha [50]")
    run.add_argument("--schemes", nargs="+", choices=SCHEMES, default=list(SCHEMES), metavar="SCHEME",
                     help="the schemes to run, of " + ", ".join(SCHEMES) + " [all]; each has its own seed, so "
                          "runs of disjoint subsets equal one run of their union")
    run.add_argument("--seed", type=number(int, 0, (1 << 63) - 1), default=0, metavar="S", help="root seed [0]")
    run.add_argument("--threads", type=number(int, 1, 4096), default=None, metavar="T", help="numba threads [all]")
    run.add_argument("--check-prefix", type=Path, default=None, metavar="JSON",
                     help="a stored file of this command with fewer replicas (same parameters and seed): the first "
                          "replicas of every (d, scheme) it holds must reproduce it bit for bit [none]")
    add_output_arguments(parser.add_argument_group("output"), "write the trajectories and provenance as JSON")
    return parser


@command
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    params = params_from_args(parser, args, MultinormParams)
    with contextlib.ExitStack() as stack:
        with one_line_errors(parser):
            check_outputs(args, stack, out_suffixes=(".json",))
        prefix = None
        if args.check_prefix is not None:
            try:
                stored = read_json(args.check_prefix)
                stored_params = stored["provenance"]["params"]
                prefix = stored["runs"]
            except (OSError, ValueError, KeyError, TypeError) as err:
                parser.error(f"--check-prefix: {str(args.check_prefix)!r} is not a readable file of this command "
                             f"({type(err).__name__}: {err})")
            stored_params = MultinormParams(**stored_params).replace(scheme=params.scheme).as_dict()
            diff = [f"{k}={v}" for k, v in stored_params.items() if v != params.as_dict()[k]]
            if diff:
                parser.error(f"--check-prefix: {str(args.check_prefix)!r} was run with other parameters "
                             f"({', '.join(diff)})")
        try:
            runs = run_schemes(params, args.d, args.replicas, args.alpha_max, args.seed, schemes=tuple(args.schemes),
                               progress=not args.quiet, threads=args.threads, prefix=prefix)
        except PrefixMismatch as err:
            print(f"{parser.prog}: error: --check-prefix: {err}", file=sys.stderr)
            return 1
        if not args.quiet:
            print(f"# multinorm Monte Carlo end states at alpha = {args.alpha_max:g}: {params.line()} "
                  f"(scheme varies); {args.replicas} replicas; accuracies, mean ± standard error")
            print(end_table(runs))
        if args.out is not None:
            run_args = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
            prov = provenance(params=params, seeds={"root_seed": args.seed,
                                                    "per_run": "SeedSequence([seed, d, scheme index])"},
                              run=run_args)
            write_json(args.out, {"runs": runs, "provenance": prov})
            if not args.quiet:
                print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
