"""Parameter sweeps: any fields of the parameter dataclass on a grid, several engines, several backends.

    python -m simulate.sweep --engine ode --grid rho=0.5:4:100 --grid eps=0:2:100 --prior 0.7 \\
        --out results/phase_rho_eps.nc [--backend serial|processes|dask] [--workers 2] \\
        [--scheduler tcp://HOST:PORT] [--quiet]

Grid specifications (``--grid``, repeatable; the axes of the data set in the order given):

    name=start:stop:num     num points from start to stop inclusive (numpy.linspace)
    name=v1,v2,...          a list (numbers, or the names of eps_law / loss, or true/false)
    name=v                  one value (an axis of length 1)

``name`` is a field of :class:`theory.Params` (rho, prior, v1, v2, eta_w, eta_b, eps, eps_law,
non_robust_only, loss, erf_scale, R0, b0) or a sweepable field of the engine (``N`` for ``mc``); the other
fields take the values of their flags (``--prior 0.7`` ...), generated from the dataclass.

Engines (:mod:`simulate.sweep_engines`, a registry): ``ode`` (vectorised over a block of points) and ``mc``
(one point per task).  Backends: ``serial`` (this process), ``processes`` (a local process pool) and
``dask`` (``dask.distributed``: a ``LocalCluster`` with ``--workers`` processes, or the existing cluster of
``--scheduler``).  The same command on any backend gives the same data set (blocks of points are fixed by
``--chunk``, not by the backend).

Results: one ``xarray.Dataset`` (netCDF via h5netcdf for ``.nc``, Zarr for ``.zarr``) with every grid field
as a dimension coordinate, every fixed field as a scalar coordinate, and the provenance (parameters,
options, seeds, versions, git SHA, command) in its attributes.  Resume: each finished block is written at
once (atomically) to ``OUT.parts/``; running the same command again computes only the missing blocks, and
a worker that dies mid-sweep loses nothing that was stored (dask re-runs its tasks on another worker).
Bad specifications end with one line naming the problem and exit status 2.

This module is the driver (:func:`run_sweep`) and the command; the grid is :mod:`simulate.sweep.grid`, the
store of blocks and results :mod:`simulate.sweep.store`, the backends :mod:`simulate.sweep.backends` and the
regions of a phase diagram :mod:`simulate.sweep.regions`.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from theory.linear.params import ParameterError, Params, stable_key

from ..core import resources
from ..core.cli import (ArgumentParser, Interrupted, add_param_arguments, claim_output, command, flag_name,
                        params_from_args)
from ..core.provenance import OutputError, WriteError, provenance, to_jsonable, versions
from .backends import BACKEND_FUNCS, BACKENDS, compute_block  # noqa: F401
from .engines import ENGINES, SweepEngine, get_engine
from .grid import BOOL_WORDS, Grid, make_grid, parse_axis  # noqa: F401
from .regions import REGION_NAMES, regions  # noqa: F401
from .store import STORE_VERSION, PartStore, existing_result, open_result, write_dataset

__all__ = ["Grid", "parse_axis", "make_grid", "run_sweep", "SweepStats", "BACKENDS", "regions", "REGION_NAMES",
           "open_result", "main"]


@dataclass(frozen=True)
class SweepStats:
    points: int  # points of the grid
    computed_points: int  # computed by this call
    reused_points: int  # read from stored blocks or the finished file
    blocks: int
    wall_s: float
    backend: str


def _signature(engine: SweepEngine, grid: Grid, options: dict[str, Any], chunk: int) -> str:
    # options that do not change the numbers (pauses, threads) stay out of the signature
    opts = {k: v for k, v in options.items() if k not in ("throttle", "threads")}
    return stable_key(to_jsonable({"engine": engine.name, "grid": grid.as_dict(), "options": opts, "chunk": chunk,
                                   "version": STORE_VERSION}), 24)


def _assemble(engine, grid, options, blocks: dict[int, dict], chunk: int, attrs: dict[str, Any]):
    import xarray as xr

    outs = engine.outputs(options)
    extra_coords = engine.coords(options)
    data_vars = {}
    for name, dims in outs.items():
        extra_shape = tuple(len(extra_coords[d]) for d in dims)
        flat = np.full((grid.size,) + extra_shape, np.nan)
        for cid, res in blocks.items():
            lo = cid * chunk
            flat[lo:lo + res[name].shape[0]] = res[name]
        data_vars[name] = (grid.names + dims, flat.reshape(grid.shape + extra_shape))
    coords: dict[str, Any] = {n: np.asarray(v) for n, v in grid.axes}
    coords.update(extra_coords)
    for k, v in grid.fixed.items():
        coords[k] = v
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def run_sweep(engine: str | SweepEngine, grid: Grid, options: dict[str, Any] | None = None, *,
              out: str | Path | None = None, backend: str = "serial", workers: int = 2, scheduler: str | None = None,
              client=None, chunk: int | None = None, progress: bool = True, keep_parts: bool = False,
              overwrite: bool = True):
    """Compute every point of ``grid`` with ``engine``; returns (xarray.Dataset, SweepStats).

    With ``out``, finished blocks are stored in ``OUT.parts/`` as they finish and the data set is written
    to ``out`` at the end; calling again with the same arguments computes only the missing blocks (none
    when ``out`` is complete).  An existing ``out`` that holds another sweep (or cannot be verified) is replaced
    only with ``overwrite``; a ``.nc`` is verified by the SHA-256 in its sidecar ``OUT.json`` before it is
    opened (a damaged netCDF file can hang the reader), and a damaged copy of the same sweep is recomputed.
    """
    eng = get_engine(engine) if isinstance(engine, str) else engine
    opts = eng.check_options(dict(options or {}))
    eng.coords(opts)  # validates the options that shape the output (alphas)
    if backend not in BACKENDS:
        raise ParameterError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    chunk = eng.default_chunk if chunk is None else chunk
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ParameterError(f"chunk must be an integer >= 1, got {chunk!r}")
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ParameterError(f"workers must be an integer >= 1, got {workers!r}")
    chunk = int(chunk)
    t0 = time.perf_counter()
    sig = _signature(eng, grid, opts, chunk)
    nblocks = -(-grid.size // chunk)
    outp = Path(out) if out is not None else None
    if outp is not None and outp.suffix.lower() not in (".nc", ".zarr"):
        raise ParameterError(f"out must end in .nc (netCDF) or .zarr, got {outp}")
    if outp is not None and outp.exists():
        old, same = existing_result(outp, sig)
        if old is not None:
            return old, SweepStats(grid.size, 0, grid.size, nblocks, time.perf_counter() - t0, backend)
        if not (same or overwrite):
            raise OutputError(f"--out: {str(outp)!r} exists and holds another sweep (or one that cannot be "
                              f"verified); pass --overwrite to replace it")
    store = None
    blocks: dict[int, dict] = {}

    def block_range(cid):
        return cid * chunk, min((cid + 1) * chunk, grid.size)

    def block_points(cid):
        return [grid.point(i) for i in range(*block_range(cid))]

    if outp is not None:
        store = PartStore(outp, sig, {"engine": eng.name, "grid": grid.as_dict(), "options": opts, "chunk": chunk})
        extra = eng.coords(opts)
        outputs = eng.outputs(opts)
        for cid in sorted(store.done()):
            if cid < nblocks:
                lo, hi = block_range(cid)
                shapes = {name: (hi - lo,) + tuple(len(extra[d]) for d in dims) for name, dims in outputs.items()}
                arrays = store.load(cid, (lo, hi), shapes)
                if arrays is not None:
                    blocks[cid] = arrays

    todo = [cid for cid in range(nblocks) if cid not in blocks]
    reused = sum(len(range(c * chunk, min((c + 1) * chunk, grid.size))) for c in blocks)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=grid.size, initial=reused, unit="pt", desc=f"sweep {eng.name} [{backend}]", leave=False)
    computed = 0
    try:
        if todo:
            tasks = ((cid, block_points(cid)) for cid in todo)
            for cid, res in BACKEND_FUNCS[backend](eng, tasks, opts, workers=workers, scheduler=scheduler,
                                                    client=client):
                res = {k: np.asarray(v, dtype=float) for k, v in res.items()}
                blocks[cid] = res
                if store is not None:
                    store.save(cid, res, block_range(cid))
                n = next(iter(res.values())).shape[0]
                computed += n
                if bar is not None:
                    bar.update(n)
    except KeyboardInterrupt as stop:  # Ctrl-C / SIGTERM: the finished blocks are stored already
        if store is not None and not isinstance(stop, Interrupted):
            raise Interrupted(store.dir, signum=getattr(stop, "signum", signal.SIGINT)) from None
        raise
    finally:
        if bar is not None:
            bar.close()
    if len(blocks) != nblocks:  # every block is computed or read back: a hole is a bug, never written out
        raise RuntimeError(f"sweep: {nblocks - len(blocks)} of {nblocks} blocks missing")
    wall = time.perf_counter() - t0
    prov = provenance(params=grid.fixed, seeds={"seed": opts.get("seed")} if "seed" in opts else None,
                      engine=eng.name, options=opts, grid=grid.as_dict(), chunk=chunk, backend=backend,
                      versions_sweep=versions(("dask", "distributed", "xarray", "h5netcdf", "zarr")))
    attrs = {"sweep_signature": sig, "engine": eng.name, "chunk": chunk, "options": json.dumps(to_jsonable(opts)),
             "grid": json.dumps(to_jsonable(grid.as_dict())), "provenance": json.dumps(prov)}
    ds = _assemble(eng, grid, opts, blocks, chunk, attrs)
    if outp is not None:
        write_dataset(ds, outp)
        if not keep_parts:
            store.remove()
    return ds, SweepStats(grid.size, computed, reused, nblocks, wall, backend)


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------
def _option_flags() -> dict[str, Any]:
    """Every engine option (union over the registry) with its default; flags are generated from these."""
    opts: dict[str, Any] = {}
    for eng in ENGINES.values():
        for k, v in eng.defaults.items():
            opts.setdefault(k, v)
    return opts


def _parse_option(name: str, default: Any, text: str):
    if isinstance(default, bool):
        if text.lower() not in BOOL_WORDS:
            raise ParameterError(f"--{name.replace('_', '-')} must be true or false, got {text!r}")
        return BOOL_WORDS[text.lower()]
    if isinstance(default, list):
        try:
            vals = [float(t) for t in text.split(",")]
        except ValueError:
            raise ParameterError(f"--{name.replace('_', '-')} must be a comma-separated list of numbers, "
                                 f"got {text!r}") from None
        return vals
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise ParameterError(f"--{name.replace('_', '-')} must be an integer, got {text!r}") from None
    if isinstance(default, float):
        try:
            x = float(text)
        except ValueError:
            raise ParameterError(f"--{name.replace('_', '-')} must be a number, got {text!r}") from None
        if not math.isfinite(x) or x < 0:
            raise ParameterError(f"--{name.replace('_', '-')} must be finite and >= 0, got {text!r}")
        return x
    return text


def build_parser(params_cls: type = Params) -> argparse.ArgumentParser:
    """The parser; the model flags are those of ``params_cls``, the parameter dataclass of the chosen engine."""
    parser = ArgumentParser(prog="python -m simulate.sweep",
                            description="Sweep any fields of theory.Params (or of the chosen engine's parameter "
                                        "dataclass) over a grid with the ODE or the Monte Carlo; one labelled data "
                                        "set (netCDF or Zarr) with provenance; resumable.")
    parser.add_argument("--engine", default="ode", help=f"one of {', '.join(ENGINES)} [ode]; the model flags "
                                                          "below are those of the engine's parameters")
    parser.add_argument("--grid", action="append", default=[], metavar="SPEC",
                        help="name=start:stop:num | name=v1,v2,... (repeatable; the axes in order)")
    add_param_arguments(parser, params_cls=params_cls)
    eng = parser.add_argument_group("engine options (each engine uses its own; defaults per engine)")
    for name, default in _option_flags().items():
        shown = ",".join(f"{v:g}" for v in default) if isinstance(default, list) else default
        eng.add_argument(flag_name(name), dest="opt_" + name, default=None, metavar="V",
                         help=f"[{shown}]" + (" (engines: " + ", ".join(e.name for e in ENGINES.values()
                                                                          if name in e.defaults) + ")"))
    run = parser.add_argument_group("run")
    run.add_argument("--backend", default="serial", help=f"one of {', '.join(BACKENDS)} [serial]")
    run.add_argument("--workers", type=int, default=2, help="processes of the local pool or LocalCluster [2]")
    run.add_argument("--scheduler", default=None, metavar="ADDR",
                     help="address of an existing dask scheduler, e.g. tcp://HOST:8786 (implies --backend dask)")
    run.add_argument("--chunk", type=int, default=None, help="points per task [ode: 100, mc: 1]")
    run.add_argument("--out", type=Path, default=None, metavar="PATH", help="result: PATH.nc or PATH.zarr")
    run.add_argument("--overwrite", action="store_true",
                     help="replace an existing --out that holds another sweep (the same sweep is reused as it is)")
    run.add_argument("--keep-parts", action="store_true", help="keep OUT.parts/ after the data set is written")
    run.add_argument("--quiet", action="store_true", help="no progress bar, print nothing but errors")
    resources.add_force_argument(run)
    return parser


def _engine_params_cls(argv) -> type:
    """The parameter dataclass of the engine named by --engine in ``argv`` (theory.Params if none or unknown)."""
    pre = ArgumentParser(add_help=False)
    pre.add_argument("--engine", default="ode")
    known, _ = pre.parse_known_args(argv)
    return ENGINES[known.engine].params_cls if known.engine in ENGINES else Params


@command
def main(argv=None) -> int:
    parser = build_parser(_engine_params_cls(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(argv)
    if args.engine not in ENGINES:
        parser.error(f"--engine must be one of {', '.join(ENGINES)}, got {args.engine!r}")
    engine = get_engine(args.engine)
    backend = "dask" if args.scheduler else args.backend
    if backend not in BACKENDS:
        parser.error(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if args.workers < 1:
        parser.error(f"--workers must be an integer >= 1, got {args.workers}")
    if args.chunk is not None and args.chunk < 1:
        parser.error(f"--chunk must be an integer >= 1, got {args.chunk}")
    if not args.grid:
        parser.error("--grid: give at least one axis, e.g. --grid rho=0.5:4:100")
    if args.out is not None and args.out.suffix.lower() not in (".nc", ".zarr"):
        parser.error(f"--out must end in .nc (netCDF) or .zarr, got {args.out}")
    if args.out is not None:
        claim_output(parser, "--out", args.out, store=args.out.suffix.lower() == ".zarr")
    base = params_from_args(parser, args, engine.params_cls)
    options: dict[str, Any] = {}
    try:
        for name, default in _option_flags().items():
            text = getattr(args, "opt_" + name)
            if text is None:
                continue
            if name not in engine.defaults:
                raise ParameterError(f"--{name.replace('_', '-')} is not an option of engine {engine.name!r}")
            options[name] = _parse_option(name, default, text)
        options = engine.check_options(options)
        resources.check(resources.sweep_estimate(args.grid, engine, options,
                                                 args.workers if backend != "serial" else 1),
                        force=args.force)  # before the grid is built
        grid = make_grid(args.grid, base, engine, {k: options[k] for k in engine.extra_fields if k in options})
    except ParameterError as err:
        parser.error(str(err))
    if backend == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError:
            parser.error("--backend dask needs dask.distributed: pip install -e '.[sweep]'")
    try:
        ds, stats = run_sweep(engine, grid, options, out=args.out, backend=backend, workers=args.workers,
                              scheduler=args.scheduler, chunk=args.chunk, progress=not args.quiet,
                              keep_parts=args.keep_parts, overwrite=args.overwrite)
    except (ParameterError, OutputError) as err:
        if isinstance(err, WriteError):
            raise
        parser.error(str(err))
    except OSError as err:
        parser.error(f"--scheduler {args.scheduler}: {err}" if args.scheduler else str(err))
    if not args.quiet:
        print(f"# sweep {engine.name} over {' x '.join(f'{n}[{len(v)}]' for n, v in grid.axes)} = {stats.points} "
              f"points on {stats.backend}: computed {stats.computed_points}, reused {stats.reused_points}, "
              f"{stats.wall_s:.1f} s")
        if args.out is not None:
            print(f"wrote {args.out}")
        else:
            print(ds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
