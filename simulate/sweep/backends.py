"""The backends of a sweep: each computes blocks of grid points with an engine and yields (block id, result) as
blocks finish: ``serial`` (this process), ``processes`` (a local spawn pool), ``dask`` (dask.distributed, a
LocalCluster or an existing scheduler).
"""

from __future__ import annotations

import contextlib
import signal
import time
from typing import Any, Iterator

from theory.core.params import ParameterError

from .engines import SweepEngine

__all__ = ["BACKENDS", "BACKEND_FUNCS", "compute_block"]

BACKENDS = ("serial", "processes", "dask")


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
            # Workers log at CRITICAL only: a worker that loses its scheduler while the sweep is being stopped
            # logs an ERROR with a traceback, and a stopped command ends with one line.
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=50)
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


BACKEND_FUNCS = {"serial": _serial, "processes": _processes, "dask": _dask}
