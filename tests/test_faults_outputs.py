"""Every command that writes an ``--out``: an existing file is refused without ``--overwrite`` (one line, exit 2,
the file untouched), a live run's lock is refused, and a failed write (disk full) is one line naming the path,
exit 74, with the previous data and its provenance kept and no lock or temporary left.

The commands are found by scanning the sources for an ``--out`` flag, so a new command cannot be left out.
"""

from __future__ import annotations

import errno
import importlib
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# command -> (argv with {out} for the output path, the output's suffix); each refuses before any work.
CASES = {
    "simulate.ode": (["--alpha-max", "2", "--alpha-step", "1", "--quiet", "--out", "{out}"], ".csv"),
    "simulate.mc": (["--N", "100", "--replicas", "2", "--alpha-max", "1", "--quiet", "--out", "{out}"], ".csv"),
    "simulate.committee": (["--quiet", "--out", "{out}"], ".csv"),
    "simulate.compare": (["--quiet", "--out", "{out}"], ".json"),
    "simulate.structured": (["--quiet", "--out", "{out}"], ".json"),
    "simulate.tradeoff": (["lp", "--quiet", "--out", "{out}"], ".json"),
    "simulate.protocol": (["--quiet", "--no-mc", "--out", "{out}"], ".json"),
    "simulate.mc_committee": (["--quiet", "--out", "{out}"], ".json"),
    "simulate.sweep": (["--grid", "rho=1:2:2", "--alphas", "1", "--quiet", "--out", "{out}"], ".nc"),
    "simulate.multinorm.command": (["--quiet", "--out", "{out}"], ".json"),
    "simulate.multinorm.endstates": (["--quiet", "--out", "{out}"], ".json"),
    "simulate.multinorm.tables": (["--quiet", "--out", "{out}"], ".json"),
    "empirical.evaluate": (["--weights", "{tmp}/w.pt", "--quiet", "--out", "{out}"], ".json"),
    "empirical.budget_curves": (["--runs", "{tmp}", "--quiet", "--out", "{out}"], ".json"),
    "empirical.online": (["--quiet", "--out", "{stem}"], ".json"),
    "empirical.reproduce": (["--quiet", "--out", "{out}"], ".json"),
    "empirical.check_linf": (["eval", "--quiet", "--out", "{out}"], ".json"),
}
# outputs that are meant to exist already: a run folder that is resumed, a file a command adds to, the
# figures that `python -m figures` regenerates in place; each still takes the lock
NO_OVERWRITE_CHECK = {"empirical.train": "a run folder is resumed by the same command",
                      "figures.__main__": "regenerates the README's images in place"}
HELPERS = {"simulate/core/cli.py", "simulate/core/provenance.py", "simulate/core/outputs.py", "empirical/cli.py"}


def _argv(name: str, tmp: Path) -> tuple[list[str], Path]:
    argv, suffix = CASES[name]
    out = tmp / f"result{suffix}"
    subs = {"{out}": str(out), "{tmp}": str(tmp), "{stem}": str(tmp / "result")}
    res = []
    for a in argv:
        for k, v in subs.items():
            a = a.replace(k, v)
        res.append(a)
    return res, out


def test_every_command_with_an_out_is_covered():
    """Each module whose source declares --out (or the shared output flags) is a case or a stated exemption."""
    declared = set()
    for folder in ("simulate", "empirical", "figures"):
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            text = path.read_text()
            if rel not in HELPERS and ('"--out"' in text or "add_output_arguments(" in text):
                declared.add(path.resolve())
    covered = {Path(inspect.getsourcefile(inspect.unwrap(importlib.import_module(m).main))).resolve()
               for m in [*CASES, *NO_OVERWRITE_CHECK]}
    assert declared <= covered, sorted(str(p) for p in declared - covered)


@pytest.mark.parametrize("name", sorted(CASES))
def test_existing_out_refused_without_overwrite(name, tmp_path, capsys):
    argv, out = _argv(name, tmp_path)
    out.write_bytes(b"an earlier result\n")
    mod = importlib.import_module(name)
    with pytest.raises(SystemExit) as exc:
        mod.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2, err
    assert len(err) == 1 and "--overwrite" in err[0] and out.name in err[0], err
    assert out.read_bytes() == b"an earlier result\n"
    assert not list(tmp_path.glob(".*.lock"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_live_runs_lock_is_refused(name, tmp_path, capsys):
    argv, out = _argv(name, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    lock = out.with_name(f".{out.name}.lock")
    try:
        lock.write_text(str(holder.pid))
        mod = importlib.import_module(name)
        with pytest.raises(SystemExit) as exc:
            mod.main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert exc.value.code == 2 and len(err) == 1 and f"pid {holder.pid}" in err[0], err
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()


def test_train_twice_on_one_out_the_second_refuses(tmp_path, capsys):
    """A run folder held by a live empirical.train is refused by a second one (the lock inside the folder)."""
    pytest.importorskip("torch")
    from empirical import train

    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".result.json.lock").write_text(str(holder.pid))
        with pytest.raises(SystemExit) as exc:
            train.main(["--out", str(out), "--data-dir", str(ROOT / "tests" / "data"), "--train-limit", "8",
                        "--test-limit", "0", "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert exc.value.code == 2 and len(err) == 1 and f"pid {holder.pid}" in err[0], err
        assert sorted(p.name for p in out.iterdir()) == [".result.json.lock"]
    finally:
        holder.kill()
        holder.wait()


def _enospc_on_replace(monkeypatch, folder: Path):
    """os.replace into ``folder`` fails as on a full disk (elsewhere, e.g. numba's cache, it works)."""
    real = os.replace

    def replace(src, dst):
        if Path(dst).resolve().is_relative_to(folder.resolve()):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def test_disk_full_keeps_the_previous_result_and_its_sidecar(tmp_path, capsys, monkeypatch):
    from simulate import ode
    from simulate.provenance import sidecar_matches

    out = tmp_path / "r.csv"
    argv = ["--alpha-max", "2", "--alpha-step", "1", "--quiet", "--out", str(out)]
    assert ode.main(argv) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    _enospc_on_replace(monkeypatch, tmp_path)
    assert ode.main([*argv, "--eps", "0.5", "--overwrite"]) == 74
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and str(out) in err[0], err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no lock, no temporary
    assert sidecar_matches(out)


def test_disk_full_in_a_checkpoint_is_one_line(tmp_path, capsys, monkeypatch):
    from simulate import mc

    ckpt = tmp_path / "c.npz"
    _enospc_on_replace(monkeypatch, tmp_path)
    code = mc.main(["--N", "50", "--replicas", "2", "--alpha-max", "1", "--quiet", "--checkpoint", str(ckpt)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 74 and len(err) == 1 and "No space left on device" in err[0] and str(ckpt) in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_disk_full_in_train_is_one_line(tmp_path, capsys, monkeypatch):
    pytest.importorskip("torch")
    from empirical import train

    out = tmp_path / "run"
    _enospc_on_replace(monkeypatch, tmp_path)
    code = train.main(["--out", str(out), "--data-dir", str(ROOT / "tests" / "data"), "--train-limit", "8",
                       "--batch-size", "8", "--epochs", "1", "--test-limit", "0", "--quiet", "--threads", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 74 and len(err) == 1 and "No space left on device" in err[0] and str(out) in err[0], err
    assert not [p for p in out.iterdir() if p.name.endswith((".tmp", ".lock"))]
