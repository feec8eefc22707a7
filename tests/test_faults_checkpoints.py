"""Checkpoints carry a SHA-256 record written with them and checked before a resume: a damaged checkpoint (or
one without its record) is refused with one line and never loaded; the record survives a kill between the two
renames; a finished run removes both files.  Every Monte Carlo family (they share one run loop) and training."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from simulate.core.provenance import checked_write, checksum_path, file_sha256, verify_checksum, ChecksumError
from simulate.core.run import Execution, Unfinished
from theory.params import ParameterError, Params


def _flip(path, at: int = -40) -> None:
    """Change one byte of ``path`` (position ``at``), the damage a bad disk or a careless edit does."""
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))


def _stopped_mc(ck, **kw):
    from simulate.linear.mc import run_mc

    with pytest.raises(Unfinished):
        run_mc(Params(), 60, 2, [0.0, 1.0, 2.0], seed=5, progress=False, checkpoint=ck, stop_after_steps=70, **kw)
    assert ck.exists() and checksum_path(ck).exists()


def test_checked_write_records_and_verifies(tmp_path):
    f = tmp_path / "state.bin"
    with checked_write(f) as fh:
        fh.write(b"one")
    record = json.loads(checksum_path(f).read_text())
    assert record["sha256"] == file_sha256(f) and record["bytes"] == 3 and record["previous"] is None
    verify_checksum(f)
    with checked_write(f) as fh:
        fh.write(b"two")
    assert json.loads(checksum_path(f).read_text())["previous"] == record["sha256"]
    f.write_bytes(b"twO")
    with pytest.raises(ChecksumError, match="does not match its SHA-256 record"):
        verify_checksum(f)
    checksum_path(f).unlink()
    with pytest.raises(ChecksumError, match="has no SHA-256 record"):
        verify_checksum(f)


def test_a_kill_between_the_renames_leaves_a_pair_that_verifies(tmp_path, monkeypatch):
    """The record is renamed into place before the data: a kill there leaves the previous data under the new
    record, which still accepts it (``previous``); the previous checkpoint is sound and is resumed."""
    import simulate.core.outputs as prov

    f = tmp_path / "state.bin"
    with checked_write(f) as fh:
        fh.write(b"previous state")

    def killed(tmp, path):
        raise KeyboardInterrupt  # the process dies before the data's rename

    monkeypatch.setattr(prov, "_commit", killed)
    with pytest.raises(KeyboardInterrupt):
        with checked_write(f) as fh:
            fh.write(b"new state")
    monkeypatch.undo()
    assert f.read_bytes() == b"previous state"
    verify_checksum(f)


def test_mc_resumes_a_sound_checkpoint_and_refuses_a_damaged_one(tmp_path):
    from simulate.linear.mc import run_mc

    alphas = [0.0, 1.0, 2.0]
    whole = run_mc(Params(), 60, 2, alphas, seed=5, progress=False)
    ck = tmp_path / "run.npz"
    _stopped_mc(ck)
    intact = ck.read_bytes()
    _flip(ck)
    with pytest.raises(ParameterError, match="does not match its SHA-256 record"):
        run_mc(Params(), 60, 2, alphas, seed=5, progress=False, checkpoint=ck)
    ck.write_bytes(intact[: len(intact) // 2])  # cut in half
    with pytest.raises(ParameterError, match="does not match its SHA-256 record"):
        run_mc(Params(), 60, 2, alphas, seed=5, progress=False, checkpoint=ck)
    ck.write_bytes(intact)
    resumed = run_mc(Params(), 60, 2, alphas, seed=5, progress=False, checkpoint=ck)
    assert np.array_equal(whole.values("R"), resumed.values("R"))  # the sound one still resumes exactly


def test_mc_cli_refuses_a_damaged_checkpoint_in_one_line_and_cleans_up_when_finished(tmp_path, capsys):
    from simulate.linear.mc import main

    ck = tmp_path / "run.npz"
    base = ["--rho", "2", "--eps", "1", "--N", "60", "--replicas", "2", "--alpha-max", "2", "--alpha-step", "1",
            "--seed", "5", "--threads", "1", "--quiet", "--checkpoint", str(ck)]
    _stopped_mc(ck)  # a checkpoint of some run: the checksum is checked before its signature
    _flip(ck)
    with pytest.raises(SystemExit) as exc:
        main(base)
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "SHA-256" in err[0] and "--checkpoint" in err[0], err
    assert ck.exists()  # refused, not deleted: the user decides
    os.remove(ck)
    assert main(base) == 0
    assert not ck.exists() and not checksum_path(ck).exists()  # a finished run removes both


def test_committee_and_multinorm_checkpoints_are_checked(tmp_path):
    from simulate.committee.mc import run_committee_mc
    from simulate.multinorm.mc import run_multinorm_mc
    from theory.committee import CommitteeParams
    from theory.multinorm import MultinormParams

    runs = {
        "committee": lambda ex: run_committee_mc(CommitteeParams(K=2), 40, 2, [0.0, 1.0, 2.0], 3, n_test=50,
                                                 execution=ex),
        "multinorm": lambda ex: run_multinorm_mc(MultinormParams(), 30, 2, [0, 1, 2], 3, execution=ex),
    }
    for name, run in runs.items():
        ck = tmp_path / f"{name}.npz"
        with pytest.raises(Unfinished):
            run(Execution(progress=False, checkpoint=ck, stop_after_steps=30))
        assert checksum_path(ck).exists(), name
        _flip(ck)
        with pytest.raises(ParameterError, match="does not match its SHA-256 record"):
            run(Execution(progress=False, checkpoint=ck))


def test_training_checkpoint_is_checked_and_a_model_file_when_it_has_a_record(tmp_path):
    torch = pytest.importorskip("torch")
    from empirical.checkpoint import CheckpointError, load_checkpoint, read_torch_file, save_checkpoint

    ck = tmp_path / "checkpoint.pt"
    save_checkpoint(ck, {"w": torch.arange(1000.0)})
    assert torch.equal(load_checkpoint(ck)["w"], torch.arange(1000.0))
    _flip(ck, at=len(ck.read_bytes()) // 2)
    with pytest.raises(CheckpointError, match="does not match its SHA-256 record"):
        load_checkpoint(ck)
    bare = tmp_path / "bare.pt"
    torch.save({"w": torch.ones(3)}, bare)  # written without a record (another program, an older version)
    with pytest.raises(CheckpointError, match="has no SHA-256 record"):
        load_checkpoint(bare)
    assert torch.equal(read_torch_file(bare)["w"], torch.ones(3))  # a model file handed over is read as it is
    model = tmp_path / "model.pt"
    save_checkpoint(model, {"w": torch.zeros(1000)})
    _flip(model, at=len(model.read_bytes()) // 2)
    with pytest.raises(CheckpointError, match="does not match"):
        read_torch_file(model, what="model file")
