"""Atomic training checkpoints and exact resume.

A checkpoint holds everything that decides the rest of a run: the model, optimizer and scheduler state,
the scheme's own state (e.g. MNG-AC's noise generator and its optimizer), the random-number states (Python,
numpy, torch CPU, CUDA, and every ``torch.Generator`` the loop owns), the epoch and the step inside it,
and the running history.  It is written atomically (temporary file in the same folder, fsync, rename), so
a process killed while writing leaves the previous checkpoint intact.

Resuming restores all of it; the loop derives each epoch's data order from (seed, epoch) alone, so a run
resumed from step k of epoch e replays exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simulate.provenance import atomic_write

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state", "CheckpointError"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (missing keys, another configuration)."""


def rng_state(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """The global RNG states and the states of the named generators."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator] | None = None) -> None:
    """Restore what :func:`rng_state` captured (the named generators in place)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for k, g in (generators or {}).items():
        if k not in state["generators"]:
            raise CheckpointError(f"checkpoint has no state for generator {k!r}")
        g.set_state(state["generators"][k])


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Atomically write ``state`` with ``torch.save`` (temporary file, fsync, rename)."""
    with atomic_write(path, "wb") as fh:
        torch.save(state, fh)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (our own files, so full unpickling)."""
    try:
        return torch.load(Path(path), map_location=map_location, weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
