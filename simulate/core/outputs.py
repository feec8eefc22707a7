"""Writing result files safely, shared by every command: atomic writes, data files with their provenance
sidecar, SHA-256 records of checkpoints, output locks and the ``--out``/``--overwrite`` checks.

A file is written as a temporary in the same folder, fsynced, then renamed into place (``atomic_write``), so
an interrupted or failed write leaves the previous file as it was; a failure is one ``WriteError`` line
naming the path. ``simulate.core.provenance`` builds what the files record and re-exports these names.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

__all__ = ["atomic_write", "write_json", "read_json", "to_jsonable", "write_with_sidecar", "sidecar_path", "sidecar_matches",
           "clean_stale_temporaries", "check_output", "output_lock", "OutputError", "WriteError",
           "check_output_folder", "csv_text", "write_result", "save_figure", "checked_write", "verify_checksum",
           "remove_checked", "checksum_path", "file_sha256", "ChecksumError"]

_UMASK_LOCK = threading.Lock()

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

_TMP_SUFFIX = ".tmp"
_LEGACY_TMP_AGE_S = 3600.0  # temporaries without a writer's pid are removed once this old


class OutputError(ValueError):
    """An output path that cannot be used (the message names the flag, the path and the reason)."""


class WriteError(OutputError):
    """Writing an output failed after the work was done (disk full, no permission, read-only file system):
    the message is one line naming the path and the reason; the previous file, if any, is unchanged."""


def _umask() -> int:
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def clean_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove temporaries of ``atomic_write(path)`` left by writers that no longer run (killed writes).

    Temporaries are named ``.NAME.PID.RANDOM.tmp``; one whose PID is not a running process is removed, and
    so is one without a PID (an older naming) once it is an hour old. Returns the paths removed.
    """
    path = Path(path)
    removed = []
    prefix = f".{path.name}."
    try:
        candidates = [p for p in path.parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(_TMP_SUFFIX)]
    except OSError:
        return removed
    for tmp in candidates:
        middle = tmp.name[len(prefix):-len(_TMP_SUFFIX)]
        pid_text = middle.split(".", 1)[0]
        try:
            stale = not _pid_alive(int(pid_text)) if "." in middle else None
        except ValueError:
            stale = None
        if stale is None:  # no pid in the name
            with contextlib.suppress(OSError):
                stale = _dt.datetime.now().timestamp() - tmp.stat().st_mtime > _LEGACY_TMP_AGE_S
        if stale:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def _write_failed(path: Path, err: OSError) -> "WriteError":
    return WriteError(f"cannot write {str(path)!r}: {err.strerror or err}")


@contextlib.contextmanager
def _staged(path: Path, mode: str) -> Iterator[tuple[Any, list[str]]]:
    """A complete, fsynced temporary beside ``path``: yields (file, [name]); the caller renames the name.

    An OSError (disk full, permission, read-only file system) becomes :class:`WriteError` naming ``path``;
    on any failure the temporary is removed and ``path`` is untouched."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=_TMP_SUFFIX, dir=path.parent)
    except OSError as err:
        raise _write_failed(path, err) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as fh:
            yield fh, [tmp]
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _write_failed(path, exc) from None
        raise


def _commit(tmp: str, path: Path) -> None:
    try:
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise _write_failed(path, err) from None


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[Any]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    The file is created with the permissions of the umask (like ``open``), and temporaries that killed
    writers left for the same path are removed first (:func:`clean_stale_temporaries`).  A failed write (an
    OSError: disk full, no permission, ...) leaves the previous ``path`` as it was and raises
    :class:`WriteError`, one line naming ``path``.
    """
    path = Path(path)
    with _staged(path, mode) as (fh, tmp):
        yield fh
    _commit(tmp[0], path)


def sidecar_path(path: str | os.PathLike) -> Path:
    """The provenance sidecar of a data file: ``PATH.json`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def write_with_sidecar(path: str | os.PathLike, payload: str | bytes, sidecar: dict[str, Any]) -> None:
    """Write a data file and its provenance sidecar so that no failure loses the previous pair and no kill
    pairs data and sidecar of two runs.

    Order: both new files are written completely as temporaries (the sidecar with the SHA-256 of the data);
    only then is the old sidecar moved aside, the data renamed into place and the new sidecar after it. A
    failure (disk full, no permission) leaves the previous data and its sidecar as they were; a kill between
    the renames leaves data without a sidecar, never under a wrong one; :func:`sidecar_matches` checks the
    pairing from the hash.
    """
    path = Path(path)
    raw = payload.encode() if isinstance(payload, str) else payload
    side = sidecar_path(path)
    side_raw = (json.dumps(to_jsonable({**sidecar, "data_sha256": hashlib.sha256(raw).hexdigest()}), indent=2)
                + "\n").encode()
    with _staged(path, "wb") as (fh, data_tmp):
        fh.write(raw)
    try:
        with _staged(side, "wb") as (fh, side_tmp):
            fh.write(side_raw)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(data_tmp[0])
        raise
    # The old sidecar is moved aside (not deleted) until the new data is in place: a failed rename of the data
    # puts it back, so the previous pair survives; a kill in between leaves data without a sidecar.
    aside = side.with_name(f".{side.name}.{os.getpid()}.aside{_TMP_SUFFIX}")
    moved = False
    try:
        try:
            os.replace(side, aside)
            moved = True
        except FileNotFoundError:
            pass
        except OSError as err:
            raise _write_failed(side, err) from None
        try:
            _commit(data_tmp[0], path)
        except BaseException:
            if moved:
                with contextlib.suppress(OSError):
                    os.replace(aside, side)
            raise
        _commit(side_tmp[0], side)
    finally:
        for tmp in (data_tmp[0], side_tmp[0], aside):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def sidecar_matches(path: str | os.PathLike) -> bool:
    """True when ``PATH.json`` exists and records the SHA-256 of the bytes now in ``PATH``."""
    path = Path(path)
    try:
        side = read_json(sidecar_path(path))
        return side.get("data_sha256") == hashlib.sha256(path.read_bytes()).hexdigest()
    except (OSError, ValueError, AttributeError):
        return False


# ---------------------------------------------------------------------------------------------------
# Checksummed intermediate state (checkpoints): a SHA-256 record written with the file, verified before use
# ---------------------------------------------------------------------------------------------------
class ChecksumError(OutputError):
    """A stored file (a checkpoint) that fails its SHA-256 record, or has none: one line naming it and what to do."""


def checksum_path(path: str | os.PathLike) -> Path:
    """The SHA-256 record of a checkpoint: ``PATH.sha256`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB pieces (a checkpoint need not fit in memory twice)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for piece in iter(lambda: fh.read(1 << 20), b""):
            h.update(piece)
    return h.hexdigest()


def _recorded(path: Path) -> dict[str, Any] | None:
    try:
        record = read_json(checksum_path(path))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("sha256"), str) else None


@contextlib.contextmanager
def checked_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """:func:`atomic_write` plus a SHA-256 record ``PATH.sha256`` that :func:`verify_checksum` checks before use.

    The record ``{"sha256", "bytes", "previous"}`` is written (atomically) after the new file is complete and
    before it is renamed into place; ``previous`` is the checksum of the file it replaces.  So a kill between
    the two renames leaves the previous file under a record that still accepts it, and every other state of
    the pair is either consistent or refused: no kill makes a damaged file pass, and none makes a sound one fail.
    """
    path = Path(path)
    with _staged(path, mode) as (fh, tmp):
        yield fh
    try:
        old = _recorded(path) if path.exists() else None
        record = {"sha256": file_sha256(tmp[0]), "bytes": os.path.getsize(tmp[0]),
                  "previous": old["sha256"] if old else None}
        with atomic_write(checksum_path(path)) as fh:
            json.dump(record, fh)
            fh.write("\n")
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp[0])
        if isinstance(exc, OSError):
            raise _write_failed(path, exc) from None
        raise
    _commit(tmp[0], path)


def verify_checksum(path: str | os.PathLike, what: str = "checkpoint") -> None:
    """Check ``path`` against its record ``PATH.sha256`` (see :func:`checked_write`) before anything reads it.

    Raises :class:`ChecksumError`, one line naming the file, when the record is missing or unreadable or the
    bytes do not match it (a damaged, truncated or edited file): such a file is never loaded."""
    path = Path(path)
    side = checksum_path(path)
    record = _recorded(path)
    if record is None:
        reason = "has no readable SHA-256 record" if side.exists() else "has no SHA-256 record"
        raise ChecksumError(f"{what} {str(path)!r} {reason} ({side.name!r} beside it: written by an older "
                            "version or copied without it), so it cannot be verified; remove it to start afresh")
    try:
        digest = file_sha256(path)
    except OSError as err:
        raise ChecksumError(f"{what} {str(path)!r} cannot be read: {err.strerror or err}") from None
    if digest not in (record["sha256"], record.get("previous")):
        raise ChecksumError(f"{what} {str(path)!r} does not match its SHA-256 record {side.name!r} (damaged, "
                            f"truncated or edited after it was written: {os.path.getsize(path)} bytes, "
                            f"{record.get('bytes')} recorded); not loaded: remove it and {side.name!r} to start "
                            "afresh")


def remove_checked(path: str | os.PathLike) -> None:
    """Remove a checkpoint and its SHA-256 record (either may be missing)."""
    path = Path(path)
    for p in (path, checksum_path(path)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def check_output(path: str | os.PathLike, *, flag: str = "--out", suffixes: tuple[str, ...] | None = None,
                 overwrite: bool = True) -> Path:
    """Check an output path before any work starts; raises :class:`OutputError` (one line naming ``flag``).

    Refused: a suffix outside ``suffixes``; a path that names a folder; a path under a regular file; a
    folder that cannot be created; an existing file when ``overwrite`` is false. Creates the folders.
    """
    path = Path(path)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise OutputError(f"{flag} must end in {' or '.join(suffixes)}, got {str(path)!r}")
    if path.is_dir():
        raise OutputError(f"{flag}: {str(path)!r} is a folder; give a file name")
    _make_folder(path.parent, path, flag)
    if path.exists() and not overwrite:
        raise OutputError(f"{flag}: {str(path)!r} exists; pass --overwrite to replace it")
    return path


def _make_folder(folder: Path, named: Path, flag: str) -> None:
    """Create ``folder`` (where ``named`` goes); OutputError if it lies under a regular file or cannot be made."""
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{flag}: {str(named)!r} lies under {str(parent)!r}, which is a regular file")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{flag}: cannot create the folder {str(folder)!r}: {err.strerror or err}") from None


def check_output_folder(path: str | os.PathLike, *, flag: str = "--out") -> Path:
    """An output folder, checked before work starts: created if missing; OutputError (one line naming
    ``flag``) if it is a file, lies under a file, or cannot be written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag}: {str(path)!r} is a file, not a folder")
    _make_folder(path, path, flag)
    try:
        tempfile.NamedTemporaryFile(dir=path, prefix=".write-test.", delete=True).close()
    except OSError as err:
        raise OutputError(f"{flag}: cannot write in {str(path)!r}: {err.strerror or err}") from None
    return path


@contextlib.contextmanager
def output_lock(path: str | os.PathLike, *, flag: str = "--out") -> Iterator[Path]:
    """Hold ``.NAME.lock`` beside ``path`` for the duration of a run, so two runs never write one output.

    A lock whose process no longer runs is taken over. Creating the lock is also the test that the folder
    is writable: failure raises :class:`OutputError` before any work.
    """
    path = Path(path)
    lock = path.with_name(f".{path.name}.lock")
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or "0")
            except (OSError, ValueError):
                pid = 0
            if pid and pid != os.getpid() and _pid_alive(pid):
                raise OutputError(f"{flag}: another run (pid {pid}) is writing {str(path)!r}; wait for it or "
                                  "choose another path") from None
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
            continue
        except OSError as err:
            raise OutputError(f"{flag}: cannot write in {str(path.parent)!r}: {err.strerror or err}") from None
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
        except OSError as err:  # disk full: no 0-byte lock is left behind
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
            raise OutputError(f"{flag}: cannot write the lock {str(lock)!r}: {err.strerror or err}") from None
        break
    else:
        raise OutputError(f"{flag}: cannot take the lock {str(lock)!r}")
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Atomically write ``data`` (made JSON-able) with indentation."""
    with atomic_write(path) as fh:
        json.dump(to_jsonable(data), fh, indent=2, sort_keys=False)
        fh.write("\n")



def read_json(path: str | os.PathLike, limit: int = 64 * 2**20) -> Any:
    """A JSON file read no further than ``limit`` bytes (a file handed over by a user is read in bounded memory):
    ValueError when it is larger or not JSON, OSError when it cannot be read."""
    with open(path, "rb") as fh:
        raw = fh.read(limit + 1)
    if len(raw) > limit:
        raise ValueError(f"larger than {limit / 2**20:g} MiB")
    return json.loads(raw.decode("utf-8"))


def csv_text(header: list[str], rows) -> str:
    """A CSV table with floats written by ``repr`` (round-trip exact)."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([repr(float(v)) for v in row])
    return buf.getvalue()


def write_result(path: str | os.PathLike, prov: dict[str, Any], columns: list[str], rows,
                 body: dict[str, Any]) -> None:
    """A command's result: ``.csv`` (``columns`` x ``rows``, provenance in the sidecar ``PATH.json``, see
    :func:`write_with_sidecar`) or ``.json`` (provenance and ``body`` in one file)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        write_with_sidecar(path, csv_text(columns, rows), {"provenance": prov})
    else:
        write_json(path, {"provenance": prov, **body})


def save_figure(fig: Any, path: str | os.PathLike, dpi: int | None = 120) -> None:
    """Write a matplotlib figure atomically in the format its suffix names (.png, .pdf, .svg); ``dpi`` None:
    matplotlib's figure dpi."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format=fmt, dpi=dpi)
