"""Atomic training checkpoints and exact resume.

A checkpoint holds everything that decides the rest of a run: the model, optimizer and scheduler state,
the scheme's own state (e.g. MNG-AC's noise generator and its optimizer), the random-number states (torch
CPU and CUDA, and every ``torch.Generator`` the loop owns), the epoch and the step inside it, and the
running history: tensors, numbers, strings, lists and dicts only, so that it loads with
``torch.load(..., weights_only=True)`` (no code runs when a file is read).  It is written atomically
(temporary file in the same folder, fsync, rename), so a process killed while writing leaves the previous
checkpoint intact, with a SHA-256 record ``PATH.sha256`` beside it (:func:`simulate.provenance.checked_write`):
a checkpoint that does not match its record, or has none, is refused with one line before ``torch.load`` reads
it; a model file is checked when it has a record (one handed over without one is read as it is).

Resuming restores all of it; the loop derives each epoch's data order from (seed, epoch) alone, so a run
resumed from step k of epoch e replays exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from simulate.provenance import ChecksumError, checked_write, checksum_path, verify_checksum

__all__ = ["save_checkpoint", "load_checkpoint", "read_torch_file", "rng_state", "set_rng_state",
           "CheckpointError"]


class CheckpointError(ValueError):
    """A checkpoint or model file that cannot be used (unreadable, missing keys, another configuration)."""


def rng_state(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """The global RNG states and the states of the named generators."""
    state = {
        "torch": torch.get_rng_state(),
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator] | None = None) -> None:
    """Restore what :func:`rng_state` captured (the named generators in place)."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for k, g in (generators or {}).items():
        if k not in state["generators"]:
            raise CheckpointError(f"checkpoint has no state for generator {k!r}")
        g.set_state(state["generators"][k])


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Atomically write ``state`` with ``torch.save`` (temporary file, fsync, rename) and its SHA-256 record."""
    with checked_write(path, "wb") as fh:
        torch.save(state, fh)


def read_torch_file(path: str | os.PathLike, map_location: Any = "cpu", what: str = "file", *,
                    checked: bool = False) -> Any:
    """``torch.load(path, weights_only=True)``; a missing, truncated or corrupt file, or one that holds
    anything but tensors and plain containers, raises :class:`CheckpointError` with a one-line message.
    The file is first checked against its SHA-256 record ``PATH.sha256`` when it has one, and must have one
    when ``checked``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {str(path)!r} not found" if not path.exists()
                              else f"{what} {str(path)!r} is not a regular file")
    if checked or checksum_path(path).exists():
        try:
            verify_checksum(path, what)
        except ChecksumError as err:
            raise CheckpointError(str(err)) from None
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch.load raises many kinds (UnpicklingError, RuntimeError, EOFError, ...)
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(f"{what} {str(path)!r} is not a readable torch file ({type(exc).__name__}: "
                              f"{first})") from None


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (see :func:`read_torch_file`)."""
    state = read_torch_file(path, map_location, what="checkpoint", checked=True)
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {str(path)!r} holds a {type(state).__name__}, not a dict")
    return state
