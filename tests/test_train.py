"""Training loop and schemes on real MNIST images (CPU, tiny runs).

* every registered scheme lowers its own training loss within a few steps on a few hundred images;
* a run stopped mid-epoch (simulated, and by SIGKILL) and resumed ends bit-identical to an uninterrupted
  run with the same seed;
* bad configurations exit with status 2 and a one-line message.
The 2-process DDP check is in tests/test_train_distributed.py.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from empirical import train as T  # noqa: E402
from empirical.schemes import scheme_names  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# Tiny run: 128 images, batch 32, 3 epochs = 12 steps, training attacks of 2 steps, budgets a third of
# MNIST's (l_inf 0.1, l_2 1, l_1 5) so that 12 steps can learn more than the uniform prediction.
TINY = ["--dataset", "mnist", "--train-limit", "128", "--batch-size", "32", "--epochs", "3",
        "--attack-steps", "2", "--lr", "2e-3", "--schedule", "constant", "--seed", "3", "--quiet",
        "--eps", "linf=0.1,l2=1,l1=5"]
UNIFORM_CE = math.log(10)  # cross-entropy of the constant uniform prediction over 10 classes
SCHEME_THREATS = {
    "natural": [], "adv": ["--threats", "linf"], "avg": ["--threats", "linf,l1,l2"],
    "max": ["--threats", "linf,l1,l2"], "msd": ["--threats", "linf,l1,l2"], "sat": ["--threats", "linf,l1,l2"],
    "mng_ac": ["--threats", "linf,l1,l2"],
}


@pytest.fixture(autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _result(out: Path) -> dict:
    return json.loads((out / "result.json").read_text())


def _state(out: Path) -> dict:
    return torch.load(out / "model.pt", map_location="cpu", weights_only=True)


def test_every_scheme_is_tested():
    assert set(scheme_names()) == set(SCHEME_THREATS)


@pytest.mark.parametrize("scheme", sorted(SCHEME_THREATS))
def test_scheme_loss_falls(scheme, tmp_path, data_dir):
    """Mean training loss of the last epoch < that of the first (same 128 images, deterministic seed).

    Measured (seed 3): natural 2.34 -> 1.35, adv 2.37 -> 2.17, avg 2.36 -> 1.82, max 2.37 -> 2.05,
    msd 2.37 -> 2.19, sat 2.35 -> 1.84, mng_ac 4.69 -> 3.11.  Asked: a drop of at least 5% AND an end
    below the loss of the uniform prediction (ln 10 per cross-entropy term; MNG-AC's loss has two, plus
    a JSD >= 0), so that collapsing to a constant output does not pass.
    """
    out = tmp_path / scheme
    rc = T.main([*TINY, "--scheme", scheme, *SCHEME_THREATS[scheme], "--data-dir", str(data_dir), "--out", str(out)])
    assert rc == 0
    res = _result(out)
    first, last = res["history"][0]["loss"], res["history"][-1]["loss"]
    assert last < 0.95 * first, f"{scheme}: loss {first:.4f} -> {last:.4f}"
    n_ce = 2 if scheme == "mng_ac" else 1
    assert last < n_ce * UNIFORM_CE - 0.05, f"{scheme}: final loss {last:.4f} not below the uniform predictor's"
    assert res["steps"] == 12 and len(res["step_losses"]) == 12
    assert res["provenance"]["git_sha"] and res["provenance"]["params"]["scheme"] == scheme
    assert "CPU" in res["device"]


@pytest.mark.parametrize("scheme", ["max", "msd", "mng_ac"])
def test_budget_warmup_scales_the_training_attacks(scheme):
    """set_budget_scale(s): every l_p budget and the step sizes that follow it times s; 1 restores them."""
    from empirical.schemes import get_scheme

    cfg = T.TrainConfig(dataset="mnist", scheme=scheme, threats=("linf", "l1", "l2"))
    s = get_scheme(scheme, cfg.threat_objects(cfg.threats))
    base = [t.eps for t in s.threats]
    assert base == [0.3, 10, 2]

    def state():
        if scheme == "msd":
            return [t.eps for t in s.msd.threats], list(s.msd.step_size)
        return [a.threat.eps for a in s.attacks], [a.step_size for a in s.attacks]

    eps1, alpha1 = state()
    s.set_budget_scale(0.25)
    eps_q, alpha_q = state()
    assert eps_q == pytest.approx([0.25 * e for e in eps1]) and alpha_q == pytest.approx([0.25 * a for a in alpha1])
    s.set_budget_scale(1.0)
    assert state() == (eps1, alpha1)
    with pytest.raises(ValueError, match="budget scale"):
        s.set_budget_scale(0.0)


def test_adv_rt_runs(tmp_path, data_dir):
    """Adv_RT (rotation-translation, attacked by search, not gradients) trains through the same loop."""
    out = tmp_path / "rt"
    rc = T.main([*TINY, "--epochs", "1", "--scheme", "adv", "--threats", "rt", "--data-dir", str(data_dir),
                 "--out", str(out)])
    assert rc == 0
    assert all(map(lambda v: v == v, _result(out)["step_losses"]))  # finite, not NaN


def _assert_same_run(a: Path, b: Path) -> None:
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), f"parameter {k} differs after resume"
    assert _result(a)["step_losses"] == _result(b)["step_losses"]


def test_resume_after_stop_equals_uninterrupted(tmp_path, data_dir):
    """SAT exercises every RNG the checkpoint must restore: data order, attack starts, threat sampler."""
    args = [*TINY, "--epochs", "2", "--scheme", "sat", "--threats", "linf,l1,l2", "--data-dir", str(data_dir)]
    assert T.main([*args, "--out", str(tmp_path / "whole")]) == 0
    part = tmp_path / "part"
    assert T.main([*args, "--out", str(part), "--stop-after-steps", "5"]) == T.INTERRUPTED
    ck = torch.load(part / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert (ck["epoch"], ck["step"]) == (1, 1)  # 4 steps per epoch: stopped inside the second epoch
    assert not (part / "result.json").exists()
    assert T.main([*args, "--out", str(part)]) == 0
    _assert_same_run(tmp_path / "whole", part)


def test_time_limited_calls_resume_to_the_uninterrupted_run(tmp_path, data_dir):
    """--time-limit 0: every call makes one step, checkpoints and exits 75; the chain of calls ends
    with exit 0 and the same model as one uninterrupted run (how a run under a per-command limit proceeds)."""
    # with a budget warm-up over half the run: the budgets must follow the global step across the calls
    args = [*TINY, "--epochs", "2", "--scheme", "sat", "--threats", "linf,l1,l2", "--eps-warmup", "0.5",
            "--data-dir", str(data_dir)]
    assert T.main([*args, "--out", str(tmp_path / "whole")]) == 0
    part = tmp_path / "part"
    codes = [T.main([*args, "--out", str(part), "--time-limit", "0"]) for _ in range(7)]
    assert codes == [T.INTERRUPTED] * 7  # 2 epochs x 4 steps, one step per call
    assert not (part / "result.json").exists()
    assert T.main([*args, "--out", str(part), "--time-limit", "0"]) == 0  # the last step, then the result
    _assert_same_run(tmp_path / "whole", part)


def test_resume_after_sigkill_equals_uninterrupted(tmp_path, data_dir):
    """Kill the process (SIGKILL) after its first checkpoint, resume in-process: same final model."""
    args = ["--dataset", "mnist", "--train-limit", "320", "--batch-size", "32", "--epochs", "2", "--seed", "5",
            "--scheme", "natural", "--quiet", "--checkpoint-every", "1", "--data-dir", str(data_dir)]
    assert T.main([*args, "--out", str(tmp_path / "whole")]) == 0
    part = tmp_path / "part"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "empirical.train", *args, "--threads", "1", "--out", str(part)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (part / "checkpoint.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert (part / "checkpoint.pt").exists() and not (part / "result.json").exists()
    assert T.main([*args, "--out", str(part)]) == 0
    _assert_same_run(tmp_path / "whole", part)


@pytest.mark.parametrize("bad", [
    ["--scheme", "nonsense"],
    ["--scheme", "adv", "--threats", "linf,l2"],
    ["--scheme", "max", "--threats", "linf"],
    ["--scheme", "avg", "--threats", "linf,l5"],
    ["--lr", "-1"],
    ["--eps", "linf=nan", "--scheme", "adv", "--threats", "linf"],
    ["--batch-size", "0"],
    ["--optimizer", "lbfgs"],
    ["--time-limit", "-1"],
    ["--eps-warmup", "1"],
    ["--eps-warmup", "-0.1"],
    ["--time-limit", "nan"],
])
def test_bad_input_exits_2(bad, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        T.main(["--out", str(tmp_path / "x"), *bad])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error:" in err


def test_checkpoint_of_other_config_is_refused(tmp_path, data_dir):
    args = ["--dataset", "mnist", "--train-limit", "64", "--batch-size", "32", "--epochs", "1", "--quiet",
            "--data-dir", str(data_dir), "--out", str(tmp_path / "r")]
    assert T.main([*args, "--seed", "1"]) == 0
    with pytest.raises(SystemExit) as exc:
        T.main([*args, "--seed", "2"])
    assert exc.value.code == 2


def test_schedules():
    total = 100
    cyc = [T.lr_factor("cyclic", s, total) for s in range(total)]
    assert max(cyc) == pytest.approx(1.0) and cyc[39] == pytest.approx(1.0) and cyc[-1] == pytest.approx(0.0)
    pw = [T.lr_factor("piecewise", s, total) for s in range(total)]
    assert pw[0] == 1.0 and pw[60] == 0.1 and pw[-1] == 0.01


def test_evaluate_only_writes_the_summary_and_matrix(tmp_path, data_dir):
    """--evaluate-only on a finished run: APGD evaluation of 4 test images, consistent summary."""
    args = ["--dataset", "mnist", "--train-limit", "64", "--batch-size", "32", "--epochs", "1", "--quiet",
            "--data-dir", str(data_dir), "--out", str(tmp_path / "r")]
    assert T.main(args) == 0
    assert T.main([*args, "--evaluate-only", "--test-limit", "4", "--eval-threats", "linf,l2"]) == 0
    ev = json.loads((tmp_path / "r" / "eval.json").read_text())
    assert ev["n_test"] == 4 and ev["threats"] == ["linf", "l2"] and len(ev["matrix"]) == 4
    assert ev["union"] <= min(ev["per_threat"].values()) <= max(ev["per_threat"].values()) <= ev["clean"]
    union = sum(all(row) for row in ev["matrix"]) / 4
    assert ev["union"] == pytest.approx(union)
    # the attack log agrees with the matrix: an example is robust under a threat exactly when no attack broke it
    log = ev["attack_log"]
    for j, t in enumerate(ev["threats"]):
        assert [lab == "robust" for lab in log["first_broken_by"][t]] == [bool(row[j]) for row in ev["matrix"]]
        assert [lab == "clean_wrong" for lab in log["first_broken_by"][t]] == [not c for c in ev["clean_correct"]]
    with pytest.raises(SystemExit) as exc:  # another configuration's run is refused
        T.main([*args[:-1], str(tmp_path / "r"), "--seed", "9", "--evaluate-only", "--test-limit", "4"])
    assert exc.value.code == 2


@pytest.mark.gpu
def test_mixed_precision_on_cuda(tmp_path, data_dir):
    """bfloat16 autocast on a GPU: the multi-threat scheme trains and its loss falls (opt-in: -m gpu)."""
    if not torch.cuda.is_available():
        pytest.fail("this test needs a CUDA device")
    out = tmp_path / "amp"
    rc = T.main([*TINY, "--scheme", "max", "--threats", "linf,l1,l2", "--device", "cuda", "--amp", "on",
                 "--data-dir", str(data_dir), "--out", str(out)])
    assert rc == 0
    res = _result(out)
    assert res["amp"] is True and "cuda" in res["device"]
    assert res["history"][-1]["loss"] < 0.95 * res["history"][0]["loss"]


def test_evaluate_only_reads_runs_trained_before_the_budget_flag(tmp_path, data_dir):
    """A result.json with the older keys (eps_linf/eps_l1/eps_l2, eval_limit) is evaluated as the same
    configuration; one whose old budget differs from the asked one is refused."""
    args = ["--dataset", "mnist", "--train-limit", "64", "--batch-size", "32", "--epochs", "1", "--quiet",
            "--scheme", "adv", "--threats", "linf", "--eps", "linf=0.2", "--data-dir", str(data_dir),
            "--out", str(tmp_path / "r")]
    assert T.main(args) == 0
    path = tmp_path / "r" / "result.json"
    res = json.loads(path.read_text())
    cfg = res["config"]
    cfg.pop("eps")
    cfg.update(eps_linf=0.2, eps_l1=None, eps_l2=None, eval_limit=cfg.pop("test_limit"))
    path.write_text(json.dumps(res))
    assert T.main([*args, "--evaluate-only", "--test-limit", "2", "--eval-threats", "linf"]) == 0
    with pytest.raises(SystemExit) as exc:
        T.main([*[a if a != "linf=0.2" else "linf=0.3" for a in args], "--evaluate-only", "--test-limit", "2"])
    assert exc.value.code == 2
