"""Rebuild the small real-data fixture of the default tests from a full data folder.

    python tests/data/make_fixture.py --from ../shared/data

Takes the first ``MNIST_TRAIN`` / ``MNIST_TEST`` images of the MNIST IDX files and the first
``CIFAR_TRAIN`` / ``CIFAR_TEST`` images of the CIFAR-10 python batches, in their original order, and writes
them in the same standard formats (gzip with mtime 0, so the bytes and the checksums in README.md are
reproducible). Prints the SHA-256 of every file written.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import pickle
import struct
import sys
from pathlib import Path

import numpy as np

MNIST_TRAIN, MNIST_TEST = 600, 300
CIFAR_TRAIN, CIFAR_TEST = 60, 40
HERE = Path(__file__).resolve().parent


def _idx_prefix(src: Path, n: int, ndim: int) -> bytes:
    with gzip.open(src, "rb") as fh:
        raw = fh.read()
    header = 4 + 4 * ndim
    shape = list(struct.unpack(f">{ndim}I", raw[4:header]))
    per_item = int(np.prod(shape[1:])) if ndim > 1 else 1
    shape[0] = n
    return raw[:4] + struct.pack(f">{ndim}I", *shape) + raw[header:header + n * per_item]


def _write_gz(path: Path, payload: bytes) -> None:
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as fh:
        fh.write(payload)


def _cifar_prefix(src: Path, n: int, label: bytes) -> dict:
    sys.path.insert(0, str(HERE.parent.parent))
    from empirical.data import _unpickle  # admits only what a CIFAR-10 batch holds: the source files are data

    batch = _unpickle(src)
    return {b"batch_label": label, b"labels": list(batch[b"labels"][:n]),
            b"data": np.ascontiguousarray(np.asarray(batch[b"data"])[:n], dtype=np.uint8)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="src", type=Path, required=True, help="full data folder")
    parser.add_argument("--to", type=Path, default=HERE, help=f"fixture folder [{HERE}]")
    args = parser.parse_args(argv)
    written = []
    mnist_out = args.to / "mnist"
    mnist_out.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", MNIST_TRAIN), ("t10k", MNIST_TEST)):
        for kind, ndim in (("images-idx3", 3), ("labels-idx1", 1)):
            name = f"{prefix}-{kind}-ubyte.gz"
            _write_gz(mnist_out / name, _idx_prefix(args.src / "mnist" / name, n, ndim))
            written.append(mnist_out / name)
    cifar_src = args.src / "cifar10-subset" / "cifar-10-batches-py"
    cifar_out = args.to / "cifar10-subset" / "cifar-10-batches-py"
    cifar_out.mkdir(parents=True, exist_ok=True)
    for name, n in (("data_batch_1", CIFAR_TRAIN), ("test_batch", CIFAR_TEST)):
        label = f"fixture: first {n} images of {name}".encode()
        with open(cifar_out / name, "wb") as fh:
            pickle.dump(_cifar_prefix(cifar_src / name, n, label), fh, protocol=4)
        written.append(cifar_out / name)
    (cifar_out / "batches.meta").write_bytes((cifar_src / "batches.meta").read_bytes())
    written.append(cifar_out / "batches.meta")
    for path in written:
        print(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.relative_to(args.to)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
