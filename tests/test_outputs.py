"""Result files under faults: data and sidecar never of two runs, no orphaned temporaries, one writer per
output, permissions from the umask, the plot format from the suffix, outputs relative to the current folder.

Each test also runs the property against the behaviour it replaces (a deliberately wrong writer) where
that is cheap, to show the test can fail.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from simulate import provenance as P
from simulate.ode import main as ode_main

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--alpha-max", "5", "--alpha-step", "1", "--quiet"]


def _kill_between(tmp_path, pair_writer: str) -> tuple[dict, bytes]:
    """Write run A (data + sidecar), then run B killed by SIGKILL right after its data file is in place;
    returns (sidecar now on disk or {}, data now on disk)."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from simulate import provenance as P
        path = {str(tmp_path / "r.csv")!r}
        def legacy(path, text, side):  # the former order: data, then sidecar
            with P.atomic_write(path) as fh:
                fh.write(text)
            P.write_json(path + ".json", side)
        writer = {{"pair": P.write_with_sidecar, "legacy": legacy}}[{pair_writer!r}]
        writer(path, "run A\\n", {{"run": "A"}})
        real_replace = os.replace
        def replace_then_die(src, dst):  # run B is killed right after its data file is in place
            real_replace(src, dst)
            if str(dst) == path:
                os.kill(os.getpid(), signal.SIGKILL)
        os.replace = replace_then_die
        writer(path, "run B\\n", {{"run": "B"}})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    side = tmp_path / "r.csv.json"
    return (json.loads(side.read_text()) if side.exists() else {}), (tmp_path / "r.csv").read_bytes()


def test_a_kill_between_data_and_sidecar_never_pairs_two_runs(tmp_path):
    side, data = _kill_between(tmp_path, "pair")
    assert data == b"run B\n" and side == {}  # B's data without a sidecar, never under A's
    assert not P.sidecar_matches(tmp_path / "r.csv")
    wrong = tmp_path / "legacy"
    wrong.mkdir()
    side, data = _kill_between(wrong, "legacy")
    assert data == b"run B\n" and side.get("run") == "A"  # the former order pairs B's data with A's sidecar


def test_a_failed_write_keeps_the_previous_data_and_sidecar(tmp_path, monkeypatch):
    """Disk full while the new pair is written: the old data and its sidecar stay, as a matching pair, and no
    temporary is left; the error is one WriteError naming the path."""
    import errno

    path = tmp_path / "r.csv"
    P.write_with_sidecar(path, "run A\n", {"run": "A"})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_fsync = os.fsync
    for fail_at in (1, 2):  # the data's temporary, then the sidecar's
        calls = []

        def fsync(fd, fail_at=fail_at, calls=calls):
            calls.append(fd)
            if len(calls) == fail_at:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        with pytest.raises(P.WriteError, match="No space left on device") as exc:
            P.write_with_sidecar(path, "run B\n", {"run": "B"})
        assert len(str(exc.value).splitlines()) == 1 and str(path.name) in str(exc.value)
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
        assert P.sidecar_matches(path)


def test_the_sidecar_records_the_data_hash(tmp_path):
    path = tmp_path / "r.csv"
    P.write_with_sidecar(path, "a,b\n1,2\n", {"provenance": {"x": 1}})
    assert P.sidecar_matches(path)
    path.write_text("a,b\n1,3\n")  # data replaced behind the sidecar's back
    assert not P.sidecar_matches(path)


def test_temporaries_of_killed_writers_are_removed_by_the_next_write(tmp_path):
    path = tmp_path / "r.json"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from simulate import provenance as P
        with P.atomic_write({str(path)!r}) as fh:
            fh.write("x" * 1000)
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    for _ in range(3):
        assert subprocess.run([sys.executable, "-c", script], timeout=60).returncode == -signal.SIGKILL
    orphans = sorted(p.name for p in tmp_path.iterdir())
    # each write removed its killed predecessor's temporary: one is left, not three
    assert len(orphans) == 1 and orphans[0].startswith(".r.json.") and orphans[0].endswith(".tmp"), orphans
    mine = tmp_path / f".r.json.{os.getpid()}.live.tmp"  # a temporary of a writer that still runs: kept
    mine.write_text("in progress")
    P.write_json(path, {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["r.json", mine.name])


def test_outputs_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        P.write_json(tmp_path / "a.json", {})
        os.umask(0o077)
        P.write_json(tmp_path / "b.json", {})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o600


def test_an_existing_out_is_refused_without_overwrite(tmp_path, capsys):
    out = tmp_path / "run.csv"
    assert ode_main([*FAST, "--out", str(out)]) == 0
    first = out.read_bytes()
    with pytest.raises(SystemExit) as exc:
        ode_main([*FAST, "--eps", "0.5", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and "--overwrite" in err and len(err.splitlines()) == 1
    assert out.read_bytes() == first
    assert ode_main([*FAST, "--eps", "0.5", "--out", str(out), "--overwrite"]) == 0
    assert out.read_bytes() != first and P.sidecar_matches(out)


def test_a_second_run_on_a_locked_out_is_refused(tmp_path, capsys):
    out = tmp_path / "run.json"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".run.json.lock").write_text(str(holder.pid))  # a live run holds the output
        with pytest.raises(SystemExit) as exc:
            ode_main([*FAST, "--out", str(out)])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and f"pid {holder.pid}" in err and not out.exists()
    finally:
        holder.kill()
        holder.wait()
    assert ode_main([*FAST, "--out", str(out)]) == 0  # a dead holder's lock is taken over
    assert not (tmp_path / ".run.json.lock").exists()


@pytest.mark.parametrize("suffix, magic", [(".pdf", b"%PDF"), (".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_plot_format_follows_the_suffix(tmp_path, suffix, magic):
    pytest.importorskip("matplotlib")
    path = tmp_path / f"x{suffix}"
    assert ode_main([*FAST, "--plot", str(path)]) == 0
    assert path.read_bytes().startswith(magic)


def test_default_figure_folder_is_relative_to_the_current_folder(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from figures import core

    assert not core.OUT_DIR.is_absolute() and not core.DOCS_DIR.is_absolute()
    monkeypatch.chdir(tmp_path)
    from figures.__main__ import main

    assert main(["tradeoffs", "--quick", "--quiet"]) == 0
    assert (tmp_path / "figures" / "out" / "quick" / "tradeoffs.png").is_file()
