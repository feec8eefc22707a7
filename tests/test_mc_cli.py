"""simulate.mc's stop-and-resume convention: exit 75 (EX_TEMPFAIL) = unfinished, checkpoint written, run
the same command again; the resumed result equals an uninterrupted run's, bit for bit."""

import json

import pytest

pytest.importorskip("numba")

from simulate.cli import UNFINISHED  # noqa: E402
from simulate.mc import main  # noqa: E402

ARGS = ["--N", "60", "--replicas", "3", "--alpha-max", "4", "--alpha-step", "1", "--seed", "9", "--quiet"]


@pytest.mark.parametrize("engine", ["reduced", "full"])
def test_stop_exits_75_and_the_same_command_finishes_identically(tmp_path, engine, capsys):
    whole = tmp_path / "whole.json"
    assert main([*ARGS, "--engine", engine, "--out", str(whole)]) == 0
    out, ck = tmp_path / "r.json", tmp_path / "r.npz"
    cmd = [*ARGS, "--engine", engine, "--out", str(out), "--checkpoint", str(ck)]
    assert main([*cmd, "--time-limit", "1e-9"]) == UNFINISHED == 75
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run the same command again" in err[0]
    assert ck.is_file() and not out.exists()
    assert main(cmd) == 0
    a, b = (json.loads(p.read_text())["result"] for p in (whole, out))
    assert a["R"]["values"] == b["R"]["values"] and a["b"]["values"] == b["b"]["values"]


def test_stop_without_checkpoint_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        main([*ARGS, "--time-limit", "5"])
    assert exc.value.code == 2 and "--checkpoint" in capsys.readouterr().err
