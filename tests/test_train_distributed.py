"""Two processes (torchrun, gloo, CPU) train the same model as one process on the same global batches.

Each rank takes half of every global batch of 32 and DDP averages the gradients, so every SGD step equals
the single-process step up to the order of floating-point summation.  Tolerance: after 6 SGD steps
(lr 0.05) the parameters agree to 2e-5 absolute (float32 rounding ~1e-7 per operation, amplified by a
few steps; a wrong sharding or a missing gradient average moves parameters by ~1e-3 or more, which the
second test checks).  MSD is deterministic (no random start), so it must match as well, with one caveat:
per example it keeps the l_p step of highest loss, a discrete choice; when two steps' losses tie to within
float rounding, one and two processes may choose differently and then drift apart by ~1e-4.  Seed 11 has
such a tie at step 5 (measured: the step losses agree to 1e-7 for steps 1-4, then differ by 1.2e-5 and
2.6e-4); seed 12 has none in its 6 steps (parameters agree to 1.5e-8), so the MSD case runs with seed 12.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from empirical import train as T  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOL = 2e-5
ARGS = ["--dataset", "mnist", "--train-limit", "96", "--batch-size", "32", "--epochs", "2", "--seed", "11",
        "--optimizer", "sgd", "--lr", "0.05", "--schedule", "constant", "--weight-decay", "0", "--quiet"]


def _torchrun(args, out: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "empirical.train", *args, "--device", "cpu", "--threads", "1", "--out", str(out)]
    # A session of its own, so that on a timeout torchrun and both workers are killed together.
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err[-3000:]


def _max_diff(a: Path, b: Path) -> float:
    sa = torch.load(a / "model.pt", map_location="cpu", weights_only=True)
    sb = torch.load(b / "model.pt", map_location="cpu", weights_only=True)
    return max(float((sa[k] - sb[k]).abs().max()) for k in sa)


@pytest.mark.parametrize("scheme", [["--scheme", "natural"],
                                    ["--scheme", "msd", "--threats", "linf,l2", "--attack-steps", "2", "--seed", "12"]],
                         ids=["natural", "msd"])
def test_two_process_gloo_matches_single_process(scheme, tmp_path, data_dir):
    torch.set_num_threads(1)
    args = [*ARGS, *scheme, "--data-dir", str(data_dir)]
    assert T.main([*args, "--out", str(tmp_path / "one")]) == 0
    _torchrun(args, tmp_path / "two")
    one = json.loads((tmp_path / "one" / "result.json").read_text())
    two = json.loads((tmp_path / "two" / "result.json").read_text())
    assert two["world_size"] == 2 and one["world_size"] == 1
    diff = _max_diff(tmp_path / "one", tmp_path / "two")
    assert diff <= TOL, f"max |theta_2proc - theta_1proc| = {diff:.3e} > {TOL:.1e}"
    for l1, l2 in zip(one["step_losses"], two["step_losses"]):
        assert abs(l1 - l2) <= 1e-4 * max(1.0, abs(l1)), (one["step_losses"], two["step_losses"])
    # The check can fail: a run with another seed (other data order) differs by far more than TOL.
    if scheme[1] == "natural":
        assert T.main([*[a if a != "11" else "12" for a in args], "--out", str(tmp_path / "other")]) == 0
        assert _max_diff(tmp_path / "one", tmp_path / "other") > 100 * TOL
