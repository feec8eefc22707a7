"""Provenance records, shared by every command that writes results.

Every result file carries the parameters, seeds, package versions, machine, git SHA and command line
that produced it (``provenance(...)``). How the files are written (atomically, with sidecars, checksums and
locks) is ``simulate.core.outputs``, whose names this module re-exports.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

# The file-writing names live in simulate.core.outputs; they are re-exported here, where every command has
# always imported them from.
from simulate.core.outputs import (ChecksumError, OutputError, WriteError, atomic_write, check_output,
                                   check_output_folder, checked_write, checksum_path, clean_stale_temporaries,
                                   csv_text, file_sha256, output_lock, remove_checked, save_figure, sidecar_matches,
                                   sidecar_path, to_jsonable, verify_checksum, write_json, write_result,
                                   write_with_sidecar)

__all__ = ["git_sha", "versions", "machine", "provenance", "atomic_write", "write_json", "to_jsonable",
           "write_with_sidecar", "sidecar_path", "sidecar_matches", "clean_stale_temporaries", "check_output",
           "output_lock", "OutputError", "WriteError", "check_output_folder", "csv_text", "write_result", "save_figure",
           "checked_write", "verify_checksum", "remove_checked", "checksum_path", "file_sha256", "ChecksumError"]

_ROOT = Path(__file__).resolve().parent.parent.parent


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


#: The SHA when this module was first imported: the code a process runs is the code it imported at its start,
#: so a result written after later commits in the same checkout is recorded with this one (and the tree's SHA
#: at the time of writing beside it, when they differ).
_SHA_AT_IMPORT = git_sha()


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


def _command() -> list[str]:
    """sys.argv with the program named relative to the checkout when it lies inside it (no absolute paths
    of one machine in the result files); a module run with ``python -m`` (whose argv[0] is its file, which does
    not run as a script) as ``python -m module``."""
    argv = list(sys.argv)
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if argv and spec is not None and getattr(spec, "name", None):
        name = spec.name[:-len(".__main__")] if spec.name.endswith(".__main__") else spec.name
        return ["python", "-m", name, *argv[1:]]
    if argv:
        with contextlib.suppress(ValueError):
            argv[0] = Path(argv[0]).resolve().relative_to(_ROOT).as_posix()
    return argv


def provenance(params: Any = None, seeds: Any = None, **extra: Any) -> dict[str, Any]:
    """The provenance block of a result file; ``git_sha`` is the checkout's SHA when the process imported this
    module (``git_sha_at_write`` the SHA now, if the checkout has changed since)."""
    return to_jsonable({
        "params": params,
        "seeds": seeds,
        "git_sha": _SHA_AT_IMPORT,
        **({} if (now := git_sha()) == _SHA_AT_IMPORT else {"git_sha_at_write": now}),
        "versions": versions(),
        "machine": machine(),
        "command": _command(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    })
