"""The run harness every Monte Carlo engine shares: the engine protocol, execution settings, the run loop with
checkpoints and early stops, the alpha grid in steps, and replica statistics.

A family's Monte Carlo (:mod:`simulate.linear.mc`, :mod:`simulate.committee.mc`, :mod:`simulate.multinorm.mc`)
writes an :class:`Engine` (its replicas' state, ``advance(t, n)``, ``observe()``) and hands it to :func:`drive`,
which records the observed quantities on the grid of steps round(alpha N) (:func:`alpha_steps`), shows
progress, sets the numba threads, saves and resumes checkpoints (guarded by :func:`run_signature`) and stops
early on request (:class:`Unfinished`).  :func:`replica_stats` is the one definition of the error bars.
"""

from __future__ import annotations

import abc
import contextlib
import math
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from theory.params import ParameterError, stable_key

from .cli import Interrupted, deferred_stop
from .grid import check_alphas
from .provenance import ChecksumError, checked_write, verify_checksum

__all__ = ["Engine", "Execution", "Unfinished", "drive", "execution_from", "alpha_steps", "replica_stats",
           "ReplicaResult",
           "check_int", "run_signature", "numba_threads_max", "REPLICAS_MAX", "SEED_MAX", "STEPS_MAX", "MEMORY_MAX",
           "SECONDS_MAX"]


def alpha_steps(alphas, N: int) -> tuple[np.ndarray, np.ndarray]:
    """Step counts round(alpha N) of an alpha grid and the alphas actually simulated (steps/N)."""
    steps = np.rint(check_alphas(alphas) * N).astype(np.int64)
    return steps, steps / N


def replica_stats(values) -> dict[str, np.ndarray]:
    """Statistics over replicas of ``values`` (len(alpha), replicas): the ``mean``, the sample ``std``
    (ddof 1; NaN for one replica) and the standard error of the mean ``se`` = std/sqrt(replicas).
    The one definition of every Monte Carlo engine's error bars."""
    v = np.asarray(values, dtype=float)
    M = v.shape[1]
    std = v.std(axis=1, ddof=1) if M > 1 else np.full(v.shape[0], np.nan)
    return {"mean": v.mean(axis=1), "std": std, "se": std / math.sqrt(M)}


class ReplicaResult:
    """The statistics of a Monte Carlo result over its replicas, shared by every family's result class: a result
    holds ``data`` {quantity: (len(alpha), replicas)} (or overrides :meth:`values`), ``alpha`` and ``N``; this
    gives ``mean``, ``std``, ``se`` (:func:`replica_stats`), ``result[q]`` (all of them and the values) and
    :meth:`index` (the row of an alpha of the output grid, steps/N)."""

    def values(self, q: str) -> np.ndarray:
        return self.data[q]

    def mean(self, q: str) -> np.ndarray:
        return replica_stats(self.values(q))["mean"]

    def std(self, q: str) -> np.ndarray:
        return replica_stats(self.values(q))["std"]

    def se(self, q: str) -> np.ndarray:
        return replica_stats(self.values(q))["se"]

    def __getitem__(self, q: str) -> dict[str, np.ndarray]:
        return {"mean": self.mean(q), "se": self.se(q), "std": self.std(q), "values": self.values(q)}

    def index(self, alpha: float) -> int:
        idx = np.flatnonzero(np.isclose(self.alpha, alpha, rtol=0, atol=0.5 / self.N))
        if idx.size == 0:
            raise KeyError(f"alpha = {alpha} is not on the output grid")
        return int(idx[0])


def check_int(name, value, lo, hi=None, why: str = ""):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo or (hi and value > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ParameterError(f"{name} must be an integer {rng}{why}, got {value!r}")
    return int(value)


# Valid ranges of a run, each with its reason.
REPLICAS_MAX = 1 << 20     # the per-replica keys and records grow with it; 10^6 replicas resolve 1e-3 / sqrt(10^6)
SEED_MAX = (1 << 64) - 1   # seeds are recorded, compared and replayed as unsigned 64-bit integers
STEPS_MAX = 1 << 53        # step counts round(alpha N) must be exact in float64 (alpha = steps/N)
MEMORY_MAX = 4 << 30       # bytes of replica state and records: the run must fit a workstation's memory
SECONDS_MAX = 1e7          # about 4 months: a longer wall-clock setting is a typo


# ---------------------------------------------------------------------------------------------------
# Engines: each holds the state of every replica and advances it by n steps from step t
# ---------------------------------------------------------------------------------------------------
class Engine(abc.ABC):
    """The interface of an engine: its state (for checkpoints), n steps from step t, and R, b, E, S.

    The state is by default the attributes named in ``state_arrays`` ({attribute: dtype, None to keep the stored
    one}): :meth:`state` gives them by name, :meth:`load` restores each as a contiguous array of its dtype."""

    name = ""
    state_arrays: ClassVar[dict[str, Any]] = {}

    def state(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self.state_arrays}

    def load(self, state: dict[str, np.ndarray]) -> None:
        for k, dtype in self.state_arrays.items():
            setattr(self, k, np.ascontiguousarray(state[k], dtype=dtype))

    @abc.abstractmethod
    def advance(self, t: int, n: int) -> None: ...

    @abc.abstractmethod
    def observe(self) -> dict[str, np.ndarray]:
        """The recorded quantities of every replica, {name: (replicas,) array}."""


def numba_threads_max() -> int:
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


@dataclass(frozen=True, kw_only=True)
class Execution:
    """How a run is executed. None of it changes the result: same seed, same numbers.

    threads             numba threads (1 .. NUMBA_NUM_THREADS; None = all)
    progress            show a tqdm bar
    checkpoint          .npz written every ``checkpoint_every`` seconds and at the end; an existing one of
                        the same run is resumed
    stop_after_steps    stop after this many steps (tests of resuming)
    time_limit          stop at the first chunk boundary after this wall time (needs ``checkpoint``)
    Stopping saves the checkpoint and raises :class:`Unfinished`.
    """

    threads: int | None = None
    progress: bool = True
    checkpoint: Path | None = None
    checkpoint_every: float = 60.0
    stop_after_steps: int | None = None
    time_limit: float | None = None

    def __post_init__(self) -> None:
        if self.threads is not None:
            object.__setattr__(self, "threads", check_int("threads", self.threads, 1, numba_threads_max(),
                                                           " (NUMBA_NUM_THREADS)"))
        if self.checkpoint is not None:
            object.__setattr__(self, "checkpoint", Path(self.checkpoint))
        for name in ("checkpoint_every", "time_limit"):
            value = getattr(self, name)
            if value is None and name == "time_limit":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= SECONDS_MAX:
                raise ParameterError(f"{name} must lie in (0, {SECONDS_MAX:g}] seconds, got {value!r}")
        if self.stop_after_steps is not None:
            check_int("stop_after_steps", self.stop_after_steps, 1)
        if self.time_limit is not None and self.checkpoint is None:
            raise ParameterError("time_limit needs a checkpoint to resume from (--checkpoint)")


class Unfinished(InterruptedError):
    """A run stopped early on request, its checkpoint saved: running it again resumes."""


def run_signature(**kw) -> str:
    """The key that guards a checkpoint: :func:`theory.params.stable_key` of the run's settings (20 hex digits)."""
    return stable_key(kw, 20)


def drive(eng: Engine, steps: np.ndarray, M: int, signature: str, quantities, ex: Execution, *, chunk: int,
          desc: str, segment: Callable[[int, int], int] | None = None,
          on_record: Callable[[dict[str, np.ndarray]], None] | None = None) -> tuple[dict[str, np.ndarray], float]:
    """The run loop shared by the Monte Carlo engines of every family.

    Advances ``eng`` in chunks of at most ``chunk`` steps to every recorded step ``steps[k]``, where it stores
    ``eng.observe()`` (a dict of (M,) arrays named by ``quantities``); ``segment(t, n)`` may shorten a chunk
    starting at step t (a schedule break) and ``on_record(values)`` sees every record.  Execution ``ex``: the
    tqdm bar, numba threads, the checkpoint (``signature`` guards it and a SHA-256 record ``PATH.sha256`` beside
    it is checked before a resume, so a damaged one is refused with one line; resumed when it exists, written
    every ``checkpoint_every`` seconds, at a stop and at the end, atomically) and stopping early (raises
    :class:`Unfinished` after saving; Ctrl-C or SIGTERM stop at the next chunk boundary, save and raise
    :class:`simulate.cli.Interrupted`).  Returns the records {name: (len(steps), M)} and the wall time.
    """
    rec = {q: np.full((steps.size, M), np.nan) for q in quantities}
    t, k = 0, 0  # steps done, records done
    ckpt = ex.checkpoint
    if ckpt is not None and ckpt.exists():
        try:
            verify_checksum(ckpt)  # a damaged checkpoint is refused, never loaded
        except ChecksumError as err:
            raise ParameterError(str(err)) from None
        try:
            with np.load(ckpt, allow_pickle=False) as z:
                if str(z["signature"]) != signature:
                    raise ParameterError(f"checkpoint {ckpt} belongs to another run (parameters, seed, N, "
                                         f"replicas, grid or engine differ); remove it or choose another path")
                t, k = int(z["t"]), int(z["k"])
                for q in quantities:
                    rec[q] = np.array(z["rec_" + q])
                eng.load({name[len("state_"):]: z[name] for name in z.files if name.startswith("state_")})
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            if isinstance(err, ParameterError):
                raise
            raise ParameterError(f"checkpoint {ckpt} is not a readable checkpoint of this program "
                                 f"({type(err).__name__}); remove it or choose another path") from None

    def save():
        if ckpt is None:
            return
        arrays = {"signature": np.array(signature), "t": np.array(t), "k": np.array(k)}
        arrays.update({"rec_" + q: rec[q] for q in quantities})
        arrays.update({"state_" + name: v for name, v in eng.state().items()})
        with checked_write(ckpt, "wb") as fh:  # with its SHA-256 record, checked before a resume
            np.savez(fh, **arrays)

    bar = None
    if ex.progress:
        from tqdm import tqdm

        bar = tqdm(total=int(steps[-1]) * M, initial=t * M, unit="step", unit_scale=True, desc=desc, leave=False)
    last_save = time.monotonic()
    t_start = time.perf_counter()
    done_here = 0
    previous_threads = None
    if ex.threads is not None:
        import numba

        previous_threads = numba.get_num_threads()
        numba.set_num_threads(ex.threads)
    handlers = contextlib.ExitStack()
    try:
        stop = handlers.enter_context(deferred_stop())  # Ctrl-C / SIGTERM end the loop at a chunk boundary
        while k < steps.size:
            if stop:
                save()
                raise Interrupted(ckpt, signum=stop.signum)
            if t == steps[k]:
                values = eng.observe()
                for q in quantities:
                    rec[q][k] = values[q]
                if on_record is not None:
                    on_record(values)
                k += 1
                continue
            n = int(min(chunk, steps[k] - t))
            if segment is not None:
                n = segment(t, n)
            if ex.stop_after_steps is not None:
                n = min(n, ex.stop_after_steps - done_here)
            if n <= 0 or (ex.time_limit is not None and time.perf_counter() - t_start > ex.time_limit):
                save()
                raise Unfinished(f"stopped after {done_here} steps (checkpoint {ckpt})")
            eng.advance(t, n)
            t += n
            done_here += n
            if bar is not None:
                bar.update(n * M)
            if ckpt is not None and time.monotonic() - last_save > ex.checkpoint_every:
                save()
                last_save = time.monotonic()
    finally:
        handlers.close()
        if bar is not None:
            bar.close()
        if previous_threads is not None:
            import numba

            numba.set_num_threads(previous_threads)
    save()
    return rec, time.perf_counter() - t_start


def execution_from(execution: Execution | None, settings: dict[str, Any], caller: str) -> Execution:
    """``execution`` or an :class:`Execution` built from keyword settings (not both)."""
    if execution is None:
        try:
            return Execution(**settings)
        except TypeError as err:
            raise TypeError(f"{caller}: {err}") from None
    if settings:
        raise TypeError(f"{caller}: give execution= or its fields ({', '.join(settings)}), not both")
    return execution
