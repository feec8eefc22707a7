"""Provenance records and atomic result files (simulate.provenance).

* in this checkout the SHA is the commit (40 hex digits, '-dirty' when files changed); outside a checkout it
  is $ADVTRAIN_GIT_SHA marked as such (a working-tree copy on a GPU machine has no .git), else 'unknown';
* a failed write leaves the old file intact and no temporary file behind.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from simulate import provenance as P

ROOT = Path(__file__).resolve().parent.parent


def test_git_sha_of_this_checkout():
    sha = P.git_sha()
    if (ROOT / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", sha), sha
    else:  # an unpacked sdist or a copied tree
        assert sha == "unknown" or sha.endswith("(from ADVTRAIN_GIT_SHA)"), sha


def test_git_sha_outside_a_checkout(tmp_path, monkeypatch):
    monkeypatch.delenv("ADVTRAIN_GIT_SHA", raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # git must not find an enclosing repo
    assert P.git_sha(tmp_path) == "unknown"
    monkeypatch.setenv("ADVTRAIN_GIT_SHA", "0123abcd")
    assert P.git_sha(tmp_path) == "0123abcd (from ADVTRAIN_GIT_SHA)"


def test_provenance_records_the_sha_of_the_imported_code(monkeypatch):
    """A commit made while a long run works must not be recorded for it: git_sha is the SHA at import, and the
    tree's SHA at the time of writing stands beside it when it differs."""
    monkeypatch.setattr(P, "_SHA_AT_IMPORT", "a" * 40)
    monkeypatch.setattr(P, "git_sha", lambda root=None: "b" * 40)
    prov = P.provenance()
    assert prov["git_sha"] == "a" * 40 and prov["git_sha_at_write"] == "b" * 40
    monkeypatch.setattr(P, "git_sha", lambda root=None: "a" * 40)
    assert "git_sha_at_write" not in P.provenance()


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "r.json"
    P.write_json(path, {"a": 1})
    with pytest.raises(RuntimeError):
        with P.atomic_write(path) as fh:
            fh.write('{"a": ')
            raise RuntimeError("interrupted mid-write")
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_provenance_block_is_json():
    prov = P.provenance(params={"rho": 2.0, "eps": float("nan")}, seeds={"seed": 0})
    assert prov["params"] == {"rho": 2.0, "eps": None}  # NaN is not JSON: written as null
    assert {"git_sha", "versions", "machine", "command", "created"} <= prov.keys()
    json.dumps(prov)


def test_command_of_a_module_run_reruns(tmp_path):
    """A result written by `python -m simulate.ode` records that form of the command (its argv[0] is the module's
    file, which does not run as a script), and the recorded command, run again, writes the same numbers."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "a.json"
    argv = ["--rho", "2", "--eps", "1", "--alpha-max", "2", "--quiet", "--out", str(out)]
    subprocess.run([sys.executable, "-m", "simulate.ode", *argv], cwd=root, check=True, timeout=120)
    command = json.loads(out.read_text())["provenance"]["command"]
    # simulate.ode runs the linear family's module: either name reruns it
    assert command[:2] == ["python", "-m"] and command[2] in ("simulate.ode", "simulate.linear.ode")
    assert command[3:] == argv
    again = tmp_path / "b.json"
    rerun = [sys.executable, *command[1:-1], str(again)]
    subprocess.run(rerun, cwd=root, check=True, timeout=120)
    a, b = (json.loads(p.read_text()) for p in (out, again))
    assert {k: v for k, v in a.items() if k != "provenance"} == {k: v for k, v in b.items() if k != "provenance"}
