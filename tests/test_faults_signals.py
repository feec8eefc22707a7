"""Ctrl-C (SIGINT) and SIGTERM in the middle of every long command, run as a subprocess: one line on stderr and
no traceback, exit 75 when a checkpoint (or the sweep's stored blocks) was written, else 130; every worker
process stopped (checked by PID); running the same command again gives the result of an uninterrupted run,
bit for bit; a finished run leaves no checkpoint; ``... | head`` ends without a BrokenPipeError.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

psutil = pytest.importorskip("psutil")

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
       "MKL_NUM_THREADS": "1"}


class Run:
    """A command started as a subprocess, its stderr collected by a thread."""

    def __init__(self, module: str, args: list[str], cwd: Path):
        self.proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, env=ENV,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.err: list[str] = []
        self.reader = threading.Thread(target=lambda: self.err.extend(self.proc.stderr), daemon=True)
        self.reader.start()

    def wait_for(self, condition, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None, f"ended early ({self.proc.returncode}): {''.join(self.err)[-2000:]}"
            assert time.monotonic() < deadline, "the run never reached the point of the signal"
            time.sleep(0.05)

    def descendants(self) -> list[int]:
        try:
            return [p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self, sig: int, timeout: float = 60.0) -> tuple[int, list[str]]:
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(timeout=10)
        return rc, [line for line in self.err if line.strip()]


def _no_orphans(pids: list[int], timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if not alive:
            break
        time.sleep(0.2)
    return alive


def _one_clean_line(lines: list[str], *needles: str) -> None:
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0] and all(n in lines[0] for n in needles), lines


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_mc_signal_resumes_bit_identically(sig, tmp_path):
    from simulate import mc

    args = ["--N", "400", "--replicas", "2", "--alpha-max", "600", "--alpha-step", "100", "--quiet"]
    assert mc.main([*args, "--out", str(tmp_path / "ref.csv")]) == 0
    ckpt, out = tmp_path / "c.npz", tmp_path / "r.csv"
    run_args = [*args, "--checkpoint", str(ckpt), "--checkpoint-every", "0.001", "--out", str(out)]
    run = Run("simulate.mc", run_args, tmp_path)
    run.wait_for(ckpt.exists)
    rc, err = run.stop(sig)
    assert rc == 75, err
    _one_clean_line(err, "checkpoint written", str(ckpt), "run the same command again")
    assert ckpt.exists() and not out.exists()
    assert mc.main(run_args) == 0
    assert out.read_bytes() == (tmp_path / "ref.csv").read_bytes()
    assert not ckpt.exists()  # a finished run removes its checkpoint


def test_mc_committee_sigint_is_one_line(tmp_path):
    run = Run("simulate.mc_committee", ["--N", "200", "--replicas", "2"], tmp_path)
    run.wait_for(lambda: run.err)  # its progress bar has started
    rc, err = run.stop(signal.SIGINT, timeout=240)  # the stop waits for a chunk (or numba's first compilation)
    err = [line for line in err if "Ctrl-C" in line or "Traceback" in line or "Error" in line]
    assert rc == 130
    _one_clean_line(err, "stopped by Ctrl-C")


SWEEP = ["--grid", "rho=0.5:4:24", "--alphas", "50,400", "--chunk", "1", "--quiet"]


@pytest.mark.parametrize("backend,sig", [("serial", signal.SIGINT), ("processes", signal.SIGTERM),
                                         ("processes", signal.SIGINT), ("dask", signal.SIGTERM)])
def test_sweep_signal_keeps_blocks_stops_workers_and_resumes(backend, sig, tmp_path):
    from simulate import sweep

    if backend == "dask":
        pytest.importorskip("distributed")
    ref, _ = sweep.run_sweep("ode", sweep.make_grid(["rho=0.5:4:24"], _base(), sweep.get_engine("ode"), {}),
                             {"alphas": [50.0, 400.0]}, chunk=1, progress=False)
    out = tmp_path / "s.nc"
    parts = out.with_name(out.name + ".parts")
    extra = [] if backend == "serial" else ["--backend", backend, "--workers", "2"]
    run = Run("simulate.sweep", [*SWEEP, *extra, "--out", str(out)], tmp_path)
    run.wait_for(lambda: len(list(parts.glob("block_*.npz"))) >= 2, timeout=180)
    workers = run.descendants()
    rc, err = run.stop(sig)
    assert rc == 75, err
    _one_clean_line([e for e in err if "warning" not in e], "checkpoint written", str(parts))
    assert not _no_orphans(workers), "worker processes outlived the sweep"
    kept = len(list(parts.glob("block_*.npz")))
    assert kept >= 2 and not out.exists()
    assert sweep.main([*SWEEP, "--out", str(out)]) == 0
    assert sweep.open_result(out).drop_attrs().identical(ref.drop_attrs())


def _base():
    from theory.params import Params

    return Params(rho=1.0)


def test_train_sigterm_resumes_bit_identically(tmp_path, data_dir):
    torch = pytest.importorskip("torch")
    from empirical import train as T

    args = ["--dataset", "mnist", "--train-limit", "320", "--batch-size", "32", "--epochs", "2", "--seed", "5",
            "--scheme", "natural", "--quiet", "--checkpoint-every", "1", "--test-limit", "0", "--threads", "1",
            "--data-dir", str(data_dir)]
    assert T.main([*args, "--out", str(tmp_path / "whole")]) == 0
    assert not (tmp_path / "whole" / "checkpoint.pt").exists()  # a finished run removes its checkpoint
    part = tmp_path / "part"
    run = Run("empirical.train", [*args, "--out", str(part)], tmp_path)
    run.wait_for((part / "checkpoint.pt").exists)
    rc, err = run.stop(signal.SIGTERM)
    assert rc == 75, err
    _one_clean_line(err, "stopped by SIGTERM", "checkpoint written")
    assert (part / "checkpoint.pt").exists() and not (part / "result.json").exists()
    assert T.main([*args, "--out", str(part)]) == 0
    a = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)
    b = torch.load(part / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_closed_pipe_ends_quietly(tmp_path):
    cmd = f"{sys.executable} -m simulate.sweep --grid rho=0.5:4:300 --alphas 1 | head -n 2"
    res = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=120)
    assert len(res.stdout.splitlines()) == 2
    assert "BrokenPipeError" not in res.stderr and "Traceback" not in res.stderr, res.stderr
