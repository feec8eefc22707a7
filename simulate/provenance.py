"""Provenance records and atomic result files, shared by every command that writes results.

Every result file carries the parameters, seeds, package versions, machine, git SHA and command line
that produced it (``provenance(...)``), and is written atomically (``atomic_write``: a temporary file in
the same folder, fsync, then ``os.replace``) so that an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

__all__ = ["git_sha", "versions", "machine", "provenance", "atomic_write", "write_json", "to_jsonable"]

_ROOT = Path(__file__).resolve().parent.parent


def git_sha(root: Path | None = None) -> str:
    """The checkout's commit SHA, with '-dirty' when it has uncommitted changes.

    Outside a git checkout (a copy of the working tree sent to a GPU machine, say) it is the value of the
    environment variable ``ADVTRAIN_GIT_SHA`` marked '(from ADVTRAIN_GIT_SHA)', else 'unknown'.
    """
    root = Path(root or _ROOT)
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        given = os.environ.get("ADVTRAIN_GIT_SHA", "").strip()
        return f"{given} (from ADVTRAIN_GIT_SHA)" if given else "unknown"


def versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Versions of Python and of the scientific packages that are installed."""
    out = {"python": platform.python_version()}
    for name in ("numpy", "scipy", "sympy", "numba", "torch", "matplotlib", *extra):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def machine() -> dict[str, Any]:
    info = {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count()}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, numpy scalars/arrays and paths as plain JSON values."""
    import dataclasses

    import numpy as np

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and obj != obj:  # NaN is not JSON
        return None
    return obj


def provenance(params: Any = None, seeds: Any = None, **extra: Any) -> dict[str, Any]:
    """The provenance block of a result file."""
    return to_jsonable({
        "params": params,
        "seeds": seeds,
        "git_sha": git_sha(),
        "versions": versions(),
        "machine": machine(),
        "command": sys.argv,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    })


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[Any]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Atomically write ``data`` (made JSON-able) with indentation."""
    with atomic_write(path) as fh:
        json.dump(to_jsonable(data), fh, indent=2, sort_keys=False)
        fh.write("\n")
