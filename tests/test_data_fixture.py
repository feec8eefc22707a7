"""The committed real-data fixture: its bytes match the checksums of its README, and (with the full data
sets at hand) it is exactly the stated prefix of the public files."""

import gzip
import hashlib
import re
import struct

import numpy as np
import pytest

from tests.conftest import FIXTURE_DIR


def _readme_checksums() -> dict[str, str]:
    text = (FIXTURE_DIR / "README.md").read_text()
    return {name: sha for sha, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", text, flags=re.M)}


def test_fixture_matches_its_readme_checksums():
    sums = _readme_checksums()
    assert len(sums) == 7, sums
    for name, sha in sums.items():
        assert hashlib.sha256((FIXTURE_DIR / name).read_bytes()).hexdigest() == sha, name


def test_fixture_is_small():
    total = sum(p.stat().st_size for p in FIXTURE_DIR.rglob("*") if p.is_file())
    assert total < 1 << 20, f"tests/data holds {total} bytes, more than 1 MiB"


def _idx(path):
    raw = gzip.open(path).read()
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    return shape, raw[4 + 4 * ndim:]


@pytest.mark.data
def test_fixture_is_the_prefix_of_the_full_files(full_data_dir):
    """Independent of the writer: compares payload bytes with the full files' first images."""
    from empirical.data import _unpickle  # the restricted reader: the files are data, never code

    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (n, *rest), small = _idx(FIXTURE_DIR / "mnist" / name)
        full_shape, full = _idx(full_data_dir / "mnist" / name)
        assert tuple(rest) == tuple(full_shape[1:])
        assert small == full[:len(small)] and len(small) == n * int(np.prod(rest or [1]))
    for name in ("data_batch_1", "test_batch"):
        small = _unpickle(FIXTURE_DIR / "cifar10-subset" / "cifar-10-batches-py" / name)
        full = _unpickle(full_data_dir / "cifar10-subset" / "cifar-10-batches-py" / name)
        n = len(small[b"labels"])
        assert np.array_equal(np.asarray(small[b"data"]), np.asarray(full[b"data"])[:n])
        assert list(small[b"labels"]) == list(full[b"labels"][:n])
