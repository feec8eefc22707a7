"""The store of a sweep: finished blocks kept in ``OUT.parts/`` (resume) and the finished data set written and
read back (netCDF via h5netcdf, or Zarr), each verified against its SHA-256 sidecar before it is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from theory.core.params import ParameterError

from ..core.provenance import sidecar_path, write_json, write_with_sidecar
from ..core.outputs import read_json

__all__ = ["STORE_VERSION", "PartStore", "write_dataset", "existing_result", "open_result", "local_io"]

STORE_VERSION = 1


class PartStore:
    """Finished blocks as OUT.parts/block_NNNNNN.npz, each written atomically with a sidecar
    ``block_NNNNNN.npz.json`` (the SHA-256 of the block's bytes, its range of grid points and the shape of
    every array), and a manifest naming the sweep; a block is used only after it matches its sidecar."""

    def __init__(self, out: Path, signature: str, meta: dict[str, Any]):
        self.dir = out.with_name(out.name + ".parts")
        self.signature = signature
        manifest = self.dir / "manifest.json"
        if manifest.exists():
            try:
                old = read_json(manifest).get("signature")
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
            side = read_json(sidecar_path(path))
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



def local_io():
    """xarray takes a distributed lock for file I/O when a dask client is active; the data sets here are in
    memory, so their I/O runs in this process (dask's synchronous scheduler)."""
    try:
        import dask
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return dask.config.set(scheduler="synchronous")


def write_dataset(ds, out: Path) -> None:
    with local_io():
        write_dataset_now(ds, out)


def write_dataset_now(ds, out: Path) -> None:
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


def existing_result(out: Path, sig: str):
    """(data set, True) when ``out`` is this sweep's finished result, verified; (None, True) when it is a
    damaged copy of this sweep (recomputed, with one warning line); (None, False) otherwise.

    A ``.nc`` is opened only after the SHA-256 in its sidecar matches its bytes: a damaged netCDF file can
    hang h5netcdf for minutes."""
    if out.suffix.lower() == ".nc":
        import hashlib

        try:
            side = read_json(sidecar_path(out))
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
    with local_io():
        if path.suffix.lower() == ".zarr":
            return xr.open_zarr(path).load()
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return ds.load()
