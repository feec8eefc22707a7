"""Stored sweep state under faults: damaged blocks are found by their checksum and recomputed (one warning line
each), a damaged result file is found by the checksum beside it without opening it (h5netcdf can hang on
it), an existing --out of another sweep is refused, the same sweep's result is reused as it is."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("xarray")
pytest.importorskip("h5netcdf")

from simulate import sweep  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ARGV = ["--grid", "rho=1:2:20", "--alphas", "1,2", "--chunk", "10", "--quiet"]


def _run(out: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "simulate.sweep", *ARGV, "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=out.parent)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted sweep, its stored blocks kept."""
    folder = tmp_path_factory.mktemp("ref")
    out = folder / "ref.nc"
    assert sweep.main([*ARGV, "--out", str(out), "--keep-parts"]) == 0
    return sweep.open_result(out), out.with_name(out.name + ".parts")


def _damage(path: Path, how: str) -> None:
    raw = path.read_bytes()
    if how == "half_points":  # a valid archive holding 5 of the block's 10 points
        with np.load(io.BytesIO(raw)) as z:
            arrays = {k: z[k][:5] for k in z.files}
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        path.write_bytes(buf.getvalue())
    elif how == "bad_crc":
        mid = len(raw) // 2
        path.write_bytes(raw[:mid] + bytes([raw[mid] ^ 0xFF]) + raw[mid + 1:])
    elif how == "cut":
        path.write_bytes(raw[: len(raw) // 2])


@pytest.mark.parametrize("how", ["half_points", "bad_crc", "cut"])
def test_a_damaged_block_is_recomputed_with_one_warning(how, reference, tmp_path, capsys):
    ref, parts = reference
    out = tmp_path / "s.nc"
    import shutil

    shutil.copytree(parts, out.with_name(out.name + ".parts"))
    block = out.with_name(out.name + ".parts") / "block_000001.npz"
    _damage(block, how)
    assert sweep.main([*ARGV, "--out", str(out)]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "block_000001.npz" in err[0] and "recomputing" in err[0], err
    got = sweep.open_result(out)
    assert not np.isnan(got["R"].values).any()
    assert got.drop_attrs().identical(ref.drop_attrs())


def test_a_damaged_result_is_found_without_opening_it(reference, tmp_path):
    out = tmp_path / "s.nc"
    assert _run(out).returncode == 0
    raw = bytearray(out.read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 100] = bytes(100)  # 100 zeroed bytes
    out.write_bytes(bytes(raw))
    res = _run(out, timeout=90)  # the former code opened the file with h5netcdf here and hung
    assert res.returncode == 0, res.stderr[-2000:]
    err = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and "checksum" in err[0] and "recomputing" in err[0], err
    ref, _ = reference
    assert sweep.open_result(out).drop_attrs().identical(ref.drop_attrs())  # recomputed, the same numbers


def test_the_same_sweep_is_reused_and_another_is_refused(tmp_path, capsys):
    out = tmp_path / "s.nc"
    assert sweep.main([*ARGV, "--out", str(out)]) == 0
    stamp = out.stat().st_mtime_ns
    assert sweep.main([*ARGV, "--out", str(out)]) == 0  # the same command: reused, nothing written
    assert out.stat().st_mtime_ns == stamp
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        sweep.main([*ARGV, "--eps-test", "0.5", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "--overwrite" in err[0], err
    assert out.stat().st_mtime_ns == stamp
    assert sweep.main([*ARGV, "--eps-test", "0.5", "--out", str(out), "--overwrite"]) == 0
    assert out.stat().st_mtime_ns != stamp
