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
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import math
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from theory.params import EPS_LAWS, LOSSES, ParameterError, Params, stable_key

from ..core.cli import ArgumentParser, add_param_arguments, flag_name, params_from_args
from ..core.provenance import (OutputError, WriteError, atomic_write, provenance, sidecar_path, to_jsonable, versions,
                         write_json, write_with_sidecar)
from .engines import ENGINES, SweepEngine, get_engine
from ..core.cli import Interrupted, check_output, command

__all__ = ["Grid", "parse_axis", "make_grid", "run_sweep", "SweepStats", "BACKENDS", "regions", "REGION_NAMES",
           "open_result", "main"]

BACKENDS = ("serial", "processes", "dask")
STORE_VERSION = 1
_BOOL = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


# ---------------------------------------------------------------------------------------------------
# Grids
# ---------------------------------------------------------------------------------------------------
_INT_FIELDS = ("N", "d")  # engines' extra sweepable fields that are integers


def _choices(name: str, params_cls: type = Params):
    """The allowed strings of a string field: its metadata's ``choices``, or those of theory.Params."""
    for f in fields(params_cls):
        if f.name == name and "choices" in f.metadata:
            return tuple(f.metadata["choices"])
    return {"eps_law": EPS_LAWS, "loss": LOSSES}.get(name)


def _field_kind(name: str, params_cls: type = Params) -> str:
    if _choices(name, params_cls) is not None:
        return "str"
    if name == "non_robust_only":
        return "bool"
    if name in _INT_FIELDS:
        return "int"
    return "float"


def _value(name: str, text: str, params_cls: type = Params):
    kind = _field_kind(name, params_cls)
    t = text.strip()
    if kind == "str":
        allowed = _choices(name, params_cls)
        if t not in allowed:
            raise ParameterError(f"--grid {name}: {t!r} is not one of {', '.join(allowed)}")
        return t
    if kind == "bool":
        if t.lower() not in _BOOL:
            raise ParameterError(f"--grid {name}: {t!r} is not true or false")
        return _BOOL[t.lower()]
    try:
        x = float(t)
    except ValueError:
        raise ParameterError(f"--grid {name}: {t!r} is not a number") from None
    if not math.isfinite(x):
        raise ParameterError(f"--grid {name}: {t!r} is not finite")
    if kind == "int":
        if x != int(x):
            raise ParameterError(f"--grid {name}: {t!r} is not an integer")
        return int(x)
    return x


def parse_axis(spec: str, allowed: tuple[str, ...], params_cls: type = Params) -> tuple[str, tuple]:
    """'name=start:stop:num' | 'name=v1,v2,...' | 'name=v' -> (name, values)."""
    if "=" not in spec:
        raise ParameterError(f"--grid {spec!r}: expected name=start:stop:num or name=v1,v2,...")
    name, _, body = spec.partition("=")
    name = name.strip().replace("-", "_")
    if name not in allowed:
        raise ParameterError(f"--grid {spec!r}: unknown field {name!r}; choose from {', '.join(allowed)}")
    body = body.strip()
    if not body:
        raise ParameterError(f"--grid {name}: no values given")
    if ":" in body:
        if _field_kind(name, params_cls) in ("str", "bool"):
            raise ParameterError(f"--grid {name}: a range start:stop:num needs a numeric field")
        parts = body.split(":")
        if len(parts) != 3:
            raise ParameterError(f"--grid {name}: a range is start:stop:num, got {body!r}")
        start, stop = _value(name, parts[0], params_cls), _value(name, parts[1], params_cls)
        try:
            num = int(parts[2])
        except ValueError:
            raise ParameterError(f"--grid {name}: num in start:stop:num must be an integer >= 1, "
                                 f"got {parts[2]!r}") from None
        if num < 1:
            raise ParameterError(f"--grid {name}: num in start:stop:num must be an integer >= 1, got {num}")
        vals = np.linspace(start, stop, num)
        if _field_kind(name, params_cls) == "int":
            if not np.allclose(vals, np.rint(vals)):
                raise ParameterError(f"--grid {name}: the range {body} does not fall on integers")
            return name, tuple(int(v) for v in np.rint(vals))
        return name, tuple(float(v) for v in vals)
    vals = tuple(_value(name, t, params_cls) for t in body.split(","))
    if len(set(vals)) != len(vals):
        raise ParameterError(f"--grid {name}: repeated values in {body!r}")
    return name, vals


@dataclass(frozen=True)
class Grid:
    """A Cartesian grid: ``axes`` (name, values) in order, and the ``fixed`` values of all other fields.

    Points are numbered in C order (the last axis fastest); ``point(i)`` is the dict of every field.
    """

    axes: tuple[tuple[str, tuple], ...]
    fixed: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a[0] for a in self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a[1]) for a in self.axes)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.axes else 1

    def point(self, i: int) -> dict[str, Any]:
        idx = np.unravel_index(i, self.shape) if self.axes else ()
        pt = dict(self.fixed)
        for (name, vals), j in zip(self.axes, idx):
            pt[name] = vals[int(j)]
        return pt

    def as_dict(self) -> dict[str, Any]:
        return {"axes": [[n, list(v)] for n, v in self.axes], "fixed": self.fixed}


def make_grid(specs: list[str], base, engine: SweepEngine, extra_fixed: dict[str, Any] | None = None) -> Grid:
    """Parse the --grid specifications and check every axis value against the engine's parameter dataclass
    (``base`` is an instance of it: the values of the fields that are not swept)."""
    allowed = engine.params_cls.field_names() + tuple(engine.extra_fields)
    axes = []
    for spec in specs:
        name, vals = parse_axis(spec, allowed, engine.params_cls)
        if name in (a[0] for a in axes):
            raise ParameterError(f"--grid {name}: the field is given twice")
        axes.append((name, vals))
    fixed = {k: v for k, v in base.as_dict().items() if k not in dict(axes)}
    for k, v in (extra_fixed or {}).items():
        if k not in dict(axes):
            fixed[k] = v
    # every field is validated on its own, so checking each axis value at the base point checks the grid
    for name, vals in axes:
        for v in vals:
            pt = {**fixed, **{n: vs[0] for n, vs in axes}, name: v}
            try:
                engine.check_point(pt)
            except ParameterError as err:
                raise ParameterError(f"--grid {name}={v!r}: {err}") from None
    return Grid(tuple(axes), fixed)


# ---------------------------------------------------------------------------------------------------
# The store of finished blocks (resume)
# ---------------------------------------------------------------------------------------------------
class _PartStore:
    """Finished blocks as OUT.parts/block_NNNNNN.npz, each written atomically with a sidecar
    ``block_NNNNNN.npz.json`` (the SHA-256 of the block's bytes, its range of grid points and the shape of
    every array), and a manifest naming the sweep; a block is used only after it matches its sidecar."""

    def __init__(self, out: Path, signature: str, meta: dict[str, Any]):
        self.dir = out.with_name(out.name + ".parts")
        self.signature = signature
        manifest = self.dir / "manifest.json"
        if manifest.exists():
            try:
                old = json.loads(manifest.read_text()).get("signature")
            except (OSError, ValueError):
                old = None
            if old != signature:
                raise ParameterError(f"{self.dir} holds blocks of another sweep (other grid, engine, options or "
                                     f"chunk); remove it or choose another --out")
        else:
            write_json(manifest, {"signature": signature, **meta})

    def path(self, cid: int) -> Path:
        return self.dir / f"block_{cid:06d}.npz"

    def done(self) -> set[int]:
        out = set()
        for p in self.dir.glob("block_*.npz"):
            try:
                out.add(int(p.stem.split("_")[1]))
            except (IndexError, ValueError):
                pass
        return out

    def save(self, cid: int, arrays: dict[str, np.ndarray], points: tuple[int, int]) -> None:
        import io

        buf = io.BytesIO()
        np.savez(buf, **arrays)
        write_with_sidecar(self.path(cid), buf.getvalue(),
                           {"signature": self.signature, "points": list(points),
                            "shapes": {k: list(v.shape) for k, v in arrays.items()}})

    def load(self, cid: int, points: tuple[int, int], shapes: dict[str, tuple[int, ...]]):
        """The block's arrays, or None (with one warning line, the block's files removed) when the block does
        not match its sidecar: another checksum, grid range, set of arrays or shape."""
        import io
        import zipfile

        path = self.path(cid)
        problem = None
        try:
            raw = path.read_bytes()
            side = json.loads(sidecar_path(path).read_text())
            if not isinstance(side, dict) or side.get("data_sha256") != hashlib.sha256(raw).hexdigest():
                problem = "its checksum does not match"
            elif side.get("signature") != self.signature or side.get("points") != list(points):
                problem = "it belongs to other grid points"
            else:
                with np.load(io.BytesIO(raw), allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
                got = {k: tuple(v.shape) for k, v in arrays.items()}
                if got != {k: tuple(v) for k, v in shapes.items()} or side.get("shapes") != {
                        k: list(v) for k, v in got.items()}:
                    problem = f"its arrays have shapes {got}, expected {dict(shapes)}"
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            problem = f"it cannot be read ({type(err).__name__})"
        if problem is None:
            return arrays
        print(f"warning: stored block {path} is damaged ({problem}); recomputing it", file=sys.stderr)
        for p in (path, sidecar_path(path)):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        return None

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------
# Backends: each yields (block id, result) as blocks finish
# ---------------------------------------------------------------------------------------------------
def compute_block(engine: SweepEngine, points: list[dict[str, Any]], options: dict[str, Any]):
    """The unit of work sent to a worker (a module-level function, so that it pickles)."""
    return engine.compute(points, options)


def _serial(engine, tasks, options, **_) -> Iterator[tuple[int, dict]]:
    for cid, pts in tasks:
        yield cid, compute_block(engine, pts, options)


def _processes(engine, tasks, options, workers=2, **_) -> Iterator[tuple[int, dict]]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_ignores_sigint)
    finished = False
    try:
        futs = {pool.submit(compute_block, engine, pts, options): cid for cid, pts in tasks}
        for fut in as_completed(futs):
            yield futs[fut], fut.result()
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:  # stopped (Ctrl-C, SIGTERM, an error): drop the queue and end the workers now, not after their blocks
            procs = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                with contextlib.suppress(Exception):
                    proc.terminate()
            for proc in procs:
                with contextlib.suppress(Exception):
                    proc.join(timeout=10)


def _worker_ignores_sigint() -> None:
    """Workers leave Ctrl-C (sent to the whole process group) to the parent, which stops them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _dask(engine, tasks, options, workers=2, scheduler=None, client=None, **_) -> Iterator[tuple[int, dict]]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as err:  # pragma: no cover - optional extra
        raise ParameterError("the dask backend needs dask.distributed: pip install -e '.[sweep]'") from err
    own = []
    if client is None:
        if scheduler is not None:
            client = Client(scheduler, timeout="20s")
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=40)
            own.append(cluster)
            client = Client(cluster)
        own.insert(0, client)
    try:
        futs = {}
        for cid, pts in tasks:
            futs[client.submit(compute_block, engine, pts, options, pure=False, key=f"sweep-block-{cid}-{time.time_ns()}")] = cid
        for fut in as_completed(list(futs)):
            yield futs[fut], fut.result()
            fut.release()
    finally:
        for obj in own:
            obj.close()


_BACKEND_FUNCS = {"serial": _serial, "processes": _processes, "dask": _dask}


# ---------------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------------
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


def _local_io():
    """xarray takes a distributed lock for file I/O when a dask client is active; the data sets here are in
    memory, so their I/O runs in this process (dask's synchronous scheduler)."""
    try:
        import dask
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return dask.config.set(scheduler="synchronous")


def _write_dataset(ds, out: Path) -> None:
    with _local_io():
        _write_dataset_now(ds, out)


def _write_dataset_now(ds, out: Path) -> None:
    suffix = out.suffix.lower()
    if suffix == ".nc":
        payload = bytes(ds.to_netcdf(engine="h5netcdf"))
        write_with_sidecar(out, payload, {"sweep_signature": ds.attrs.get("sweep_signature"),
                                          "provenance": json.loads(ds.attrs.get("provenance", "null"))})
    elif suffix == ".zarr":
        tmp = out.with_name(f".{out.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        ds.to_zarr(tmp, mode="w", consolidated=True)
        old = out.with_name(f".{out.name}.old")
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        raise ParameterError(f"--out must end in .nc (netCDF) or .zarr, got {out}")


def _existing_result(out: Path, sig: str):
    """(data set, True) when ``out`` is this sweep's finished result, verified; (None, True) when it is a
    damaged copy of this sweep (recomputed, with one warning line); (None, False) otherwise.

    A ``.nc`` is opened only after the SHA-256 in its sidecar matches its bytes: a damaged netCDF file can
    hang h5netcdf for minutes."""
    if out.suffix.lower() == ".nc":
        import hashlib

        try:
            side = json.loads(sidecar_path(out).read_text())
        except (OSError, ValueError):
            return None, False
        if not isinstance(side, dict) or side.get("sweep_signature") != sig:
            return None, False
        try:
            ok = side.get("data_sha256") == hashlib.sha256(out.read_bytes()).hexdigest()
        except OSError:
            ok = False
        if not ok:
            print(f"warning: {out} does not match the checksum in {sidecar_path(out).name}; recomputing it",
                  file=sys.stderr)
            return None, True
    try:
        old = open_result(out)
    except Exception:  # noqa: BLE001 - an unreadable result is not reused
        return None, False
    return (old, True) if old.attrs.get("sweep_signature") == sig else (None, False)


def open_result(path: str | Path):
    """The data set of a finished sweep, loaded into memory (netCDF or Zarr)."""
    import xarray as xr

    path = Path(path)
    with _local_io():
        if path.suffix.lower() == ".zarr":
            return xr.open_zarr(path).load()
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return ds.load()


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
        old, same = _existing_result(outp, sig)
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
        store = _PartStore(outp, sig, {"engine": eng.name, "grid": grid.as_dict(), "options": opts, "chunk": chunk})
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
            for cid, res in _BACKEND_FUNCS[backend](eng, tasks, opts, workers=workers, scheduler=scheduler,
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
        _write_dataset(ds, outp)
        if not keep_parts:
            store.remove()
    return ds, SweepStats(grid.size, computed, reused, nblocks, wall, backend)


# ---------------------------------------------------------------------------------------------------
# Regions of a phase diagram
# ---------------------------------------------------------------------------------------------------
#: Region codes of :func:`regions` and their names (docs/sweeps.md gives the definitions).
REGION_NAMES = {0: "no effect", 1: "helps (trade-off)", 2: "no trade-off", 3: "hurts"}


def regions(dE, dS, tol: float = 1e-3) -> np.ndarray:
    """Region of each point from dE = E_adv - E_std and dS = S_adv - S_std (final state, same eps_test).

    hurts (3): dS > tol; no trade-off (2): dS < -tol and dE <= tol; helps with a trade-off (1): dS < -tol
    and dE > tol; no effect (0): |dS| <= tol.  NaN inputs give -1.
    """
    dE, dS = np.asarray(dE, float), np.asarray(dS, float)
    out = np.zeros(np.broadcast_shapes(dE.shape, dS.shape), dtype=np.int8)
    out[dS > tol] = 3
    better = dS < -tol
    out[better & (dE <= tol)] = 2
    out[better & (dE > tol)] = 1
    out[~(np.isfinite(dE) & np.isfinite(dS))] = -1
    return out


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
        if text.lower() not in _BOOL:
            raise ParameterError(f"--{name.replace('_', '-')} must be true or false, got {text!r}")
        return _BOOL[text.lower()]
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
        check_output(parser, "--out", args.out, store=args.out.suffix.lower() == ".zarr")
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
