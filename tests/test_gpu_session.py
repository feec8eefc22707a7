"""bench/gpu_session.py (the helpers of the one-command GPU session) and the script's failure path, CPU.

* plan: the epochs follow E = floor(margin (S - startup) / (c T)) with the contention c measured side by
  side (or 2 when not measured), capped to [1, max_epochs]; a second call reuses the plan (resume);
* table: the accuracies, the union (AND over the threats per image) and its standard error agree with a
  numpy computation from the same matrices; a missing threat leaves the union out; evaluations that
  disagree on the clean images are refused;
* the script, given no data, stops before any work with exit 1 and still writes session.json.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("gpu_session", ROOT / "bench" / "gpu_session.py")
GS = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(GS)


def _bench(path: Path, spb: dict[str, float], batch_size: int = 100) -> None:
    rows = [{"key": k, "scheme": k, "seconds_per_batch": v, "seconds_per_epoch": v * 60_000 / batch_size}
            for k, v in spb.items()]
    path.write_text(json.dumps({"rows": rows, "complete": True}))


def test_plan_epochs_from_the_bench(tmp_path):
    _bench(tmp_path / "bench.json", {"adv_linf": 0.01, "max": 0.05, "msd": 0.02})
    # alone: max 30 s, msd 12 s per epoch; side by side 1.5x and 1.25x slower -> c = 1.5
    _bench(tmp_path / "bench_pair_max.json", {"max": 0.075})
    _bench(tmp_path / "bench_pair_msd.json", {"msd": 0.025})
    p = GS.plan(tmp_path, ["max", "msd"], train_seconds=300, train_limit=60_000, max_epochs=30, margin=0.85,
                startup=20)
    assert p["contention"] == pytest.approx(1.5)
    usable = 0.85 * 280
    assert p["schemes"]["max"]["epochs"] == math.floor(usable / (30 * 1.5)) == 5
    assert p["schemes"]["msd"]["epochs"] == math.floor(usable / (12 * 1.5)) == 13
    # a tenth of the images: ten times the epochs, capped
    p = GS.plan(tmp_path, ["max", "msd"], 300, 6_000, 30, 0.85, 20)
    assert p["schemes"]["max"]["epochs"] == 30 and p["schemes"]["max"]["epochs_that_fit"] == 52


def test_plan_without_side_by_side_assumes_a_serialised_device_and_is_reused(tmp_path):
    _bench(tmp_path / "bench.json", {"max": 0.05})
    p = GS.plan(tmp_path, ["max", "msd"], 100, 60_000, 30, 1.0, 0)
    assert p["contention"] == GS.SERIAL_CONTENTION
    assert p["schemes"]["max"]["epochs"] == 1 and p["schemes"]["max"]["epochs_that_fit"] == 1  # 100 / 60
    assert p["schemes"]["msd"]["planned_epoch_seconds"] is None and p["schemes"]["msd"]["epochs"] == 1
    args = ["plan", "--runs", str(tmp_path), "--train-seconds", "1000", "--schemes", "max"]
    assert GS.main(args) == 0
    first = json.loads((tmp_path / "plan.json").read_text())
    assert GS.main([*args[:3], "--train-seconds", "5", "--schemes", "max"]) == 0  # reused, not re-planned
    assert json.loads((tmp_path / "plan.json").read_text()) == first


def _session(rng, n=200, threats=("linf", "l1", "l2")):
    clean = (rng.random(n) < 0.9).astype(int)
    ev = {}
    for t in GS.THREATS:
        if t in threats:
            robust = ((rng.random(n) < 0.7) & clean.astype(bool)).astype(int)
            ev[t] = {"clean_correct": clean.tolist(), "robust_matrix": robust[:, None].tolist(),
                     "provenance": {"params": {"strength": "eval", "attacks": {
                         t: "WorstOf(LinfBall(eps=0.3), attacks=['APGD(LinfBall(eps=0.3))', 'APGDT(LinfBall(eps=0.3))'])"}}}}
        else:
            ev[t] = {"missing": True}
    train = {"status": "complete", "result": {"train_seconds": 12.0, "config": {"epochs": 3}, "device": "cpu"}}
    return {"eval": {"max": ev}, "train": {"max": train}}, clean


def test_table_union_and_standard_error_against_numpy():
    rng = np.random.default_rng(0)
    session, clean = _session(rng)
    (row,) = GS.table_rows(session)
    M = np.stack([np.array(session["eval"]["max"][t]["robust_matrix"])[:, 0] for t in GS.THREATS], 1).astype(bool)
    union = float(np.mean(M.all(1)))
    assert row["union"] == pytest.approx(union, abs=1e-12)
    assert row["union_se"] == pytest.approx(np.sqrt(union * (1 - union) / len(clean)), abs=1e-12)
    assert row["clean"] == pytest.approx(clean.mean(), abs=1e-12)
    for j, t in enumerate(GS.THREATS):
        assert row["per_threat"][t] == pytest.approx(M[:, j].mean(), abs=1e-12)
    assert row["union"] <= min(row["per_threat"].values()) and row["epochs"] == 3
    label = GS._attacks_label(session["eval"]["max"])
    assert "APGD + APGDT" in label and "not the full suite" in label
    ev = session["eval"]["max"]["linf"]
    ev["attack_log"] = {"attacks": {"linf": ["apgd-ce", "apgd-t", "fab-t", "square"]}}
    ev["provenance"]["params"]["attacks"]["linf"] = ("WorstOf(LinfBall(eps=0.3), attacks=['APGD(LinfBall(eps=0.3))', "
                                                    "'APGDT(LinfBall(eps=0.3))', 'FABT(LinfBall(eps=0.3))', 'Square(LinfBall(eps=0.3))'])")
    label = GS._attacks_label({"linf": ev})
    assert label == "strength 'eval': apgd-ce + apgd-t + fab-t + square (AutoAttack's standard suite)", label


def test_table_leaves_out_the_union_of_a_missing_threat_and_refuses_disagreeing_evaluations():
    session, _ = _session(np.random.default_rng(1), threats=("linf", "l2"))
    (row,) = GS.table_rows(session)
    assert "union" not in row and set(row["per_threat"]) == {"linf", "l2"}
    session, _ = _session(np.random.default_rng(2))
    cc = session["eval"]["max"]["l1"]["clean_correct"]
    cc[0] = 1 - cc[0]
    with pytest.raises(ValueError, match="disagree"):
        GS.table_rows(session)


def test_script_without_data_stops_at_once_and_writes_the_session(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "GPU_DEVICE": "cpu", "GPU_THREADS": "1",
           "GPU_DATA_DIR": str(tmp_path / "no_data"), "GPU_RUNS": str(tmp_path / "runs"), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_session.sh")], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    session = json.loads((tmp_path / "out" / "session.json").read_text())
    assert session["status"] == "failed"
    assert [s["stage"] for s in session["stages"]] == ["data"]
    assert "train-images-idx3-ubyte.gz (bash bench/gpu_session.sh --prepare" in (tmp_path / "out" / "session.log").read_text()


def test_a_run_stopped_early_is_read_from_its_checkpoint_and_labelled(tmp_path):
    torch = pytest.importorskip("torch")
    run = tmp_path / "runs" / "train_max"
    run.mkdir(parents=True)
    weights = {"w": torch.arange(3.0)}
    torch.save({"model": weights, "optimizer": {}, "config": {"epochs": 4, "batch_size": 100, "train_limit": None},
                "epoch": 1, "step": 150, "history": [{"epoch": 0}], "train_seconds": 9.5}, run / "checkpoint.pt")
    (tmp_path / "out").mkdir()
    info = GS._training(tmp_path / "runs", "max", tmp_path / "out")
    assert info["status"] == "partial" and info["epochs_done"] == 1 and info["step_in_epoch"] == 150
    assert torch.equal(torch.load(tmp_path / "out" / "max_model.pt", weights_only=True)["w"], weights["w"])
    session, _ = _session(np.random.default_rng(3))
    session["train"]["max"] = info
    (row,) = GS.table_rows(session)
    assert row["epochs"] == pytest.approx(1.25) and row["epochs_planned"] == 4 and row["train_status"] == "partial"
    assert "1.25/4*" in GS._format([row], {})


def test_collect_reads_the_evaluations_of_the_session_strength_only(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    runs.mkdir()
    (runs / "bench.json").write_text(json.dumps({"rows": [], "complete": True}))
    session, _ = _session(np.random.default_rng(4))
    for s in ("max", "msd"):
        (runs / f"train_{s}").mkdir()
        (runs / f"train_{s}" / "result.json").write_text(json.dumps({"train_seconds": 1.0, "config": {"epochs": 2},
                                                                     "device": "cpu", "step_losses": [1.0] * 50}))
        (runs / f"train_{s}" / "model.pt").write_bytes(b"weights")
        for t in GS.THREATS:
            (runs / f"eval_{s}_apgd_model_{t}.json").write_text(json.dumps(session["eval"]["max"][t]))
    out.mkdir()
    data, rc = GS.collect(runs, out, {"strength": "eval"}, 540, None)
    assert rc == 1 and data["status"] == "failed"  # only 'apgd' evaluations exist
    data, rc = GS.collect(runs, out, {"strength": "apgd"}, 540, None)
    assert rc == 0 and data["status"] == "complete"
    assert (out / "msd_model.pt").read_bytes() == b"weights" and "step_losses" not in data["train"]["max"]["result"]
    (runs / "eval_msd_apgd_model_l1.json").unlink()
    data, rc = GS.collect(runs, out, {"strength": "apgd"}, 540, None)
    assert rc == GS.PARTIAL and data["status"] == "partial" and data["eval"]["msd"]["l1"]["missing"]


@pytest.mark.slow
def test_the_whole_session_at_tiny_sizes(tmp_path, data_dir):
    """The CPU rehearsal of docs/gpu.md at smaller sizes (minutes on two cores): every stage, exit 0, the four
    files of $OUT, and the table made from them."""
    pytest.importorskip("torch")
    sizes = {"GPU_DEVICE": "cpu", "GPU_THREADS": "1", "GPU_BUDGET_S": "1200", "GPU_BENCH_BATCHES": "1",
             "GPU_BENCH_BATCH_SIZE": "2", "GPU_BENCH_S": "400", "GPU_CONTENTION_BATCHES": "1",
             "GPU_CONTENTION_S": "200", "GPU_MODEL": "mnist_cnn_small", "GPU_TRAIN_LIMIT": "40", "GPU_BATCH_SIZE": "20",
             "GPU_MAX_EPOCHS": "1", "GPU_STARTUP_S": "60", "GPU_TEST_LIMIT": "4", "GPU_EVAL_BATCH": "4",
             "GPU_EVAL_S": "400", "GPU_STRENGTH": "apgd"}
    env = {**os.environ, **sizes, "OUT": str(tmp_path / "out"), "GPU_DATA_DIR": str(data_dir / "mnist"),
           "GPU_RUNS": str(tmp_path / "runs"), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_session.sh")], env=env, capture_output=True, text=True,
                          timeout=1300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["max_model.pt", "msd_model.pt", "session.json",
                                                                   "session.log"]
    table = tmp_path / "table.json"
    assert GS.main(["table", "--session", str(tmp_path / "out" / "session.json"), "--out", str(table)]) == 0
    rows = json.loads(table.read_text())["rows"]
    assert [r["row"] for r in rows] == ["max", "MSD"] and all(r["n_test"] == 4 and "union" in r for r in rows)
