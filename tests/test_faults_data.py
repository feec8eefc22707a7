"""Untrusted data folders: nothing in a data file is executed, nothing is decompressed beyond what its header
promises, wrong geometry / empty splits / unreadable folders end with one line naming the file and exit 2.

Each test here failed on the loaders before they were made safe: the CIFAR pickle ran its payload, the IDX
reader decompressed the whole file before checking its header, a 32 x 32 MNIST file gave a shape traceback, a
0-image split was accepted, an unreadable folder gave a PermissionError traceback.
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from empirical import data  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _idx_gz(path: Path, shape: tuple[int, ...], payload: bytes | None = None) -> Path:
    head = struct.pack(">HBB", 0, 0x08, len(shape)) + struct.pack(f">{len(shape)}I", *shape)
    body = payload if payload is not None else bytes(int(np.prod(shape)))
    with gzip.GzipFile(path, "wb", mtime=0) as fh:
        fh.write(head + body)
    return path


def _mnist_folder(tmp_path: Path, data_dir: Path) -> Path:
    folder = tmp_path / "data"
    shutil.copytree(data_dir / "mnist", folder / "mnist")
    return folder


class _Marker:
    """An object whose unpickling would create a file: the stand-in for a payload that runs a command."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_cifar_pickle_is_not_executed(tmp_path, data_dir, capsys):
    folder = tmp_path / "data"
    shutil.copytree(data_dir / "cifar10-subset", folder / "cifar10-subset")
    batch_file = folder / "cifar10-subset" / "cifar-10-batches-py" / "test_batch"
    batch = data._unpickle(batch_file)  # the committed fixture, read by the restricted reader
    marker = tmp_path / "marker"
    batch[b"extra"] = _Marker(str(marker))
    batch_file.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(data.DataError, match="refused global"):
        data.load_cifar10(folder, "test")
    assert not marker.exists(), "the pickle's payload ran"
    # through a command: one line, exit 2, still nothing executed
    from empirical import evaluate
    from empirical.models import get_model

    weights = tmp_path / "w.pt"
    torch.save(get_model("preact_resnet18").state_dict(), weights)
    with pytest.raises(SystemExit) as exc:
        evaluate.main(["--weights", str(weights), "--dataset", "cifar10", "--data-dir", str(folder),
                       "--test-limit", "2", "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refused global" in err[0] and "test_batch" in err[0], err
    assert not marker.exists()


def test_real_cifar_batches_still_load(data_dir):
    x, y = data.load_cifar10(data_dir, "train")
    assert x.shape == (60, 3, 32, 32) and y.shape == (60,)


def test_gzip_bomb_refused_quickly_with_bounded_memory(tmp_path):
    # A header promising 10 images of 28 x 28 (7,840 bytes), then 64 MiB of zeros (64 KiB compressed).
    path = tmp_path / "train-images-idx3-ubyte.gz"
    head = struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">3I", 10, 28, 28)
    with gzip.GzipFile(path, "wb", mtime=0) as fh:
        fh.write(head)
        block = bytes(1 << 20)
        for _ in range(64):
            fh.write(block)
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(data.DataError, match="longer than"):
            data.read_idx(path, 3, item_shape=(28, 28))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The old reader decompressed all 64 MiB before looking at the header (peak > 64 MiB); the streaming
    # reader holds the promised payload plus one read chunk (1 MiB) and gzip's buffers.
    assert peak < 8 << 20, f"peak traced memory {peak / 2**20:.1f} MiB"
    assert time.perf_counter() - t0 < 5.0


def test_header_checked_before_the_payload(tmp_path, data_dir, capsys):
    folder = _mnist_folder(tmp_path, data_dir)
    # 32 x 32 images: refused by the header, before any payload is read
    _idx_gz(folder / "mnist" / "t10k-images-idx3-ubyte.gz", (300, 32, 32))
    with pytest.raises(data.DataError, match="32 x 32, expected 28 x 28"):
        data.load_mnist(folder, "test")
    # 0 images
    _idx_gz(folder / "mnist" / "t10k-images-idx3-ubyte.gz", (0, 28, 28))
    _idx_gz(folder / "mnist" / "t10k-labels-idx1-ubyte.gz", (0,))
    with pytest.raises(data.DataError, match="0 items"):
        data.load_mnist(folder, "test")
    # a header promising more than any split holds: refused before allocating
    _idx_gz(folder / "mnist" / "t10k-images-idx3-ubyte.gz", (4_000_000_000, 28, 28), payload=b"")
    with pytest.raises(data.DataError, match="more than the 60000"):
        data.load_mnist(folder, "test")
    # truncated payload
    shutil.copy(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz", folder / "mnist" / "t10k-images-idx3-ubyte.gz")
    raw = gzip.decompress((folder / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes())
    _idx_gz(folder / "mnist" / "t10k-images-idx3-ubyte.gz", (300, 28, 28), payload=raw[16:-100])
    with pytest.raises(data.DataError, match="header promises"):
        data.load_mnist(folder, "test")


@pytest.mark.parametrize("case", ["geometry", "empty"])
def test_bad_test_split_one_line_in_evaluate(tmp_path, data_dir, capsys, case):
    from empirical import evaluate
    from empirical.models import get_model

    folder = _mnist_folder(tmp_path, data_dir)
    if case == "geometry":
        _idx_gz(folder / "mnist" / "t10k-images-idx3-ubyte.gz", (300, 32, 32))
    else:
        _idx_gz(folder / "mnist" / "t10k-images-idx3-ubyte.gz", (0, 28, 28))
        _idx_gz(folder / "mnist" / "t10k-labels-idx1-ubyte.gz", (0,))
    weights = tmp_path / "w.pt"
    torch.save(get_model("mnist_cnn").state_dict(), weights)
    out = tmp_path / "eval.json"
    with pytest.raises(SystemExit) as exc:
        evaluate.main(["--weights", str(weights), "--data-dir", str(folder), "--test-limit", "5", "--quiet",
                       "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "t10k-images" in err[0], err
    assert not out.exists()


def test_unreadable_data_folder_one_line(tmp_path, data_dir):
    """Mode 000 on the data folder: one line naming it, exit 2 (as root, the child drops the capabilities
    that let root read any file, with util-linux's setpriv)."""
    folder = _mnist_folder(tmp_path, data_dir)
    os.chmod(folder / "mnist", 0)
    for p in (tmp_path, folder):
        os.chmod(p, 0o755)
    code = ("import sys; from empirical import data\n"
            "try:\n    data.load_mnist(sys.argv[1], 'test')\n"
            "except data.DataError as e:\n    print(e); raise SystemExit(2)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: mode 000 cannot be enforced")
        caps = "-dac_override,-dac_read_search"
        prefix = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]
    try:
        res = subprocess.run([*prefix, sys.executable, "-c", code, str(folder)], capture_output=True, text=True,
                             env=env, timeout=120, cwd="/")
    finally:
        os.chmod(folder / "mnist", 0o755)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1 and str(folder / "mnist") in lines[0] and "ermission denied" in lines[0], res


def test_a_truncated_test_file_is_noticed_before_training(tmp_path, data_dir, capsys):
    from empirical import train

    folder = _mnist_folder(tmp_path, data_dir)
    raw = gzip.decompress((folder / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes())
    with gzip.GzipFile(folder / "mnist" / "t10k-images-idx3-ubyte.gz", "wb", mtime=0) as fh:
        fh.write(raw[: len(raw) // 2])  # cut in half
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        train.main(["--out", str(out), "--data-dir", str(folder), "--train-limit", "64", "--batch-size", "32",
                    "--epochs", "1", "--test-limit", "10", "--quiet", "--threads", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "t10k-images" in err[0], err
    assert not (out / "checkpoint.pt").exists() and not (out / "model.pt").exists()  # no step was taken
