"""Real image data sets as float tensors in the pixel box [0, 1].

Every loader takes the data folder as a parameter (``data_dir``; ``None`` falls back to the environment
variable ``ADVTRAIN_DATA_DIR``, then to ``../shared/data`` beside the checkout) and raises
:class:`DataError` naming the file and what is wrong when a file is missing or malformed.

Formats read (all standard, see ``../shared/data/README.md``):

* MNIST and Fashion-MNIST: the four gzipped IDX files (``train-images-idx3-ubyte.gz``, ...), big-endian
  header: magic ``0x00000803`` (images) or ``0x00000801`` (labels), then the sizes, then uint8 payload.
* CIFAR-10 "subset": the python pickles of ``cifar-10-batches-py`` (keys ``b'data'`` N x 3072 uint8 in
  R, G, B planes and ``b'labels'``).
* CIFAR-10 "jpeg": ``train.tar.gz`` / ``test.tar.gz`` with members ``<class name>/<index>.jpg``, streamed
  from the archive and decoded with PIL.

Files in a data folder are untrusted: the pickles go through an unpickler that admits only the types a
CIFAR-10 batch holds (nothing in them is executed), and an IDX file's header (magic, axes, 28 x 28 items, 1 to
60,000 of them) is checked before its payload is streamed, never beyond the size the header promises.

Shapes: images ``x`` are float32 ``[n, C, H, W]`` with values in [0, 1]; labels ``y`` are int64 ``[n]``
(``mnist_binary`` gives float labels tau in {+1, -1}).

``python -m empirical.data download --dataset mnist --to DIR`` fetches the standard files
(:mod:`empirical.download`).
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import torch
from simulate.cli import command

__all__ = [
    "DataError", "CIFAR10_CLASSES", "resolve_data_dir", "read_idx", "load_mnist", "load_fashion_mnist",
    "load_cifar10", "mnist_binary", "load_dataset", "DATASETS",
]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
_SPLITS = ("train", "test")
_ROOT = Path(__file__).resolve().parent.parent


class DataError(ValueError):
    """A data file is missing or malformed (the message names the file and the problem)."""


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """The data folder: ``data_dir`` if given, else ``$ADVTRAIN_DATA_DIR``, else ``../shared/data``."""
    if data_dir is None:
        data_dir = os.environ.get("ADVTRAIN_DATA_DIR", _ROOT.parent / "shared" / "data")
    return _readable_folder(Path(data_dir), "(pass --data-dir or set ADVTRAIN_DATA_DIR)")


def _readable_folder(path: Path, hint: str = "") -> Path:
    """``path`` if it is a folder whose entries can be listed, else a one-line DataError naming it."""
    try:
        is_dir = path.is_dir()
        if is_dir:
            with os.scandir(path) as entries:
                next(entries, None)
    except OSError as exc:
        raise DataError(f"data_dir {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    if not is_dir:
        raise DataError(f"data_dir {str(path)!r} is not a folder" + (f" {hint}" if hint else ""))
    return path


def _check_split(split: str) -> None:
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")


def _check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")


#: The geometry of the IDX data sets (MNIST, Fashion-MNIST): 28 x 28 unsigned-byte images, at most 60,000
#: per file (the largest split), labels 0..9.
IDX_IMAGE_SHAPE = (28, 28)
IDX_MAX_ITEMS = 60000
_CHUNK = 1 << 20  # bytes read per step while streaming a payload


def _open_for_reading(path: Path, what: str = "data file"):
    """``open(path, 'rb')`` with a missing or unreadable file as a one-line DataError naming the path."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"missing {what} {str(path)!r}") from None
    except IsADirectoryError:
        raise DataError(f"{str(path)!r} is a folder, expected a {what}") from None
    except OSError as exc:
        raise DataError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None


def read_idx(path: str | os.PathLike, expected_ndim: int, *, item_shape: tuple[int, ...] | None = None,
             max_items: int | None = IDX_MAX_ITEMS) -> np.ndarray:
    """Read a (gzipped or plain) IDX file of unsigned bytes into a uint8 array with ``expected_ndim`` axes.

    The header is read and checked first (magic, number of axes, ``item_shape`` = the sizes after the first
    axis, at least one and at most ``max_items`` items), then exactly the payload it promises is streamed
    into a preallocated array; a payload shorter or longer than promised is refused without reading more
    than one byte past the promise, so a compressed file never costs more memory than its header states.
    """
    path = Path(path)
    raw_fh = _open_for_reading(path)
    try:
        with raw_fh, (gzip.GzipFile(fileobj=raw_fh, mode="rb") if path.suffix == ".gz" else raw_fh) as fh:
            head = fh.read(4)
            if len(head) < 4:
                raise DataError(f"{str(path)!r} is too short to be an IDX file ({len(head)} bytes)")
            zero, dtype_code, ndim = struct.unpack(">HBB", head)
            if zero != 0 or dtype_code != 0x08:
                raise DataError(f"{str(path)!r} is not an unsigned-byte IDX file (magic {head.hex()})")
            if ndim != expected_ndim:
                raise DataError(f"{str(path)!r} has {ndim} axes, expected {expected_ndim}")
            dims = fh.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise DataError(f"{str(path)!r}: truncated header")
            shape = struct.unpack(f">{ndim}I", dims)
            if item_shape is not None and tuple(shape[1:]) != tuple(item_shape):
                raise DataError(f"{str(path)!r}: items of shape {' x '.join(map(str, shape[1:]))}, expected "
                                f"{' x '.join(map(str, item_shape))}")
            if shape[0] == 0:
                raise DataError(f"{str(path)!r} holds 0 items")
            if max_items is not None and shape[0] > max_items:
                raise DataError(f"{str(path)!r}: header promises {shape[0]} items, more than the {max_items} "
                                f"of the largest split")
            size = int(np.prod(shape, dtype=np.int64))
            out = np.empty(size, dtype=np.uint8)
            view, got = memoryview(out), 0
            while got < size:
                n = fh.readinto(view[got:got + _CHUNK])
                if not n:
                    break
                got += n
            if got < size:
                raise DataError(f"{str(path)!r}: payload has {got} bytes, header promises {size} (shape {shape})")
            if fh.read(1):
                raise DataError(f"{str(path)!r}: payload is longer than the {size} bytes its header promises "
                                f"(shape {shape}); refused")
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"cannot read {str(path)!r}: {getattr(exc, 'strerror', None) or exc}") from None
    return out.reshape(shape)


def _load_idx_pair(folder: Path, split: str, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    _check_split(split)
    _check_limit(limit)
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz", 3, item_shape=IDX_IMAGE_SHAPE)
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", 1, item_shape=())
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{folder}: {images.shape[0]} images but {labels.shape[0]} labels for split {split!r}")
    if labels.size and labels.max() > 9:
        raise DataError(f"{folder}: label {int(labels.max())} outside 0..9")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def load_mnist(data_dir=None, split: str = "train", limit: int | None = None):
    """MNIST from ``<data_dir>/mnist/`` (or ``data_dir`` itself if it holds the IDX files).

    Returns ``(x, y)``: x float32 [n, 1, 28, 28] in [0, 1], y int64 [n]; the first ``limit`` images in
    the original order when ``limit`` is given.
    """
    root = resolve_data_dir(data_dir)
    folder = _readable_folder(root / "mnist" if (root / "mnist").is_dir() else root)
    return _load_idx_pair(folder, split, limit)


def load_fashion_mnist(data_dir=None, split: str = "train", limit: int | None = None):
    """Fashion-MNIST (same IDX format as MNIST), from the Debian package ``dataset-fashion-mnist``.

    ``data_dir`` None reads ``/usr/share/datasets/fashion-mnist``; otherwise ``data_dir`` (or its
    ``fashion-mnist/`` subfolder). Same shapes as :func:`load_mnist`.
    """
    if data_dir is None:
        folder = FASHION_MNIST_DIR
        if not folder.is_dir():
            raise DataError(f"Fashion-MNIST folder {str(folder)!r} is missing: "
                            "run `apt-get install dataset-fashion-mnist` or pass data_dir")
    else:
        root = _readable_folder(Path(data_dir))
        folder = _readable_folder(root / "fashion-mnist" if (root / "fashion-mnist").is_dir() else root)
    return _load_idx_pair(folder, split, limit)


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that admits only what a CIFAR-10 python batch holds: dicts, lists, bytes, str, ints and
    NumPy arrays (their reconstructor, ``ndarray`` and ``dtype``; ``_codecs.encode`` for the bytes of a
    protocol-2 pickle). Any other global (a function a malicious file would call) is refused before it is
    looked up, so nothing in the file is executed."""

    ALLOWED = frozenset({
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    })

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name} (a CIFAR-10 batch holds only dicts, "
                                         f"lists, bytes, ints and NumPy arrays)")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    with _open_for_reading(path) as fh:
        try:
            obj = _CifarUnpickler(fh, encoding="bytes").load()
        except Exception as exc:  # pickle raises many kinds of errors on corrupt input
            raise DataError(f"cannot unpickle {str(path)!r}: {exc}") from None
    if not isinstance(obj, dict) or b"data" not in obj or b"labels" not in obj:
        raise DataError(f"{str(path)!r} is not a CIFAR-10 batch (needs keys b'data' and b'labels')")
    return obj


def _cifar_subset(root: Path, split: str, limit: int | None):
    folder = root / "cifar10-subset" / "cifar-10-batches-py"
    if not folder.is_dir():
        folder = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    _readable_folder(folder)
    if split == "test":
        names = ["test_batch"]
    else:
        names = sorted(p.name for p in folder.glob("data_batch_*"))
        if not names:
            raise DataError(f"no data_batch_* file in {str(folder)!r}")
    xs, ys = [], []
    for name in names:
        batch = _unpickle(folder / name)
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(f"{folder / name}: b'data' must be uint8 N x 3072, got {data.dtype} {data.shape}")
        if labels.shape != (data.shape[0],) or (labels.size and (labels.min() < 0 or labels.max() > 9)):
            raise DataError(f"{folder / name}: b'labels' must be N integers in 0..9")
        if data.shape[0] == 0:
            raise DataError(f"{str(folder / name)!r} holds 0 images")
        xs.append(data)
        ys.append(labels)
        if limit is not None and sum(len(a) for a in ys) >= limit:
            break
    data, labels = np.concatenate(xs), np.concatenate(ys)
    if limit is not None:
        data, labels = data[:limit], labels[:limit]
    x = torch.from_numpy(data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0)
    return x, torch.from_numpy(labels)


def _cifar_jpeg(root: Path, split: str, limit: int | None):
    from PIL import Image  # installed with matplotlib

    path = root / "cifar10-jpeg" / f"{split}.tar.gz"
    if not path.is_file():
        path = root / f"{split}.tar.gz"
    if not path.is_file():
        raise DataError(f"missing CIFAR-10 JPEG archive {str(root / 'cifar10-jpeg' / f'{split}.tar.gz')!r}")
    entries = []  # (index within class, label, jpeg bytes): streamed, decoded only if selected
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                parts = member.name.split("/")
                if len(parts) < 2 or not parts[-1].lower().endswith(".jpg"):
                    raise DataError(f"{path}: unexpected member {member.name!r} (expected <class>/<index>.jpg)")
                cls, stem = parts[-2], parts[-1][:-4]
                if cls not in CIFAR10_CLASSES:
                    raise DataError(f"{path}: unknown class folder {cls!r} in member {member.name!r}")
                try:
                    index = int(stem)
                except ValueError:
                    raise DataError(f"{path}: member {member.name!r} is not named <index>.jpg") from None
                entries.append((index, CIFAR10_CLASSES.index(cls), tar.extractfile(member).read()))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"cannot read archive {str(path)!r}: {exc}") from exc
    if not entries:
        raise DataError(f"{path}: no JPEG images in the archive")
    # Interleave the classes (sort by index within class, then class) so that a prefix is class-balanced.
    entries.sort(key=lambda e: (e[0], e[1]))
    if limit is not None:
        entries = entries[:limit]
    x = np.empty((len(entries), 32, 32, 3), dtype=np.uint8)
    for i, (_, _, raw) in enumerate(entries):
        try:
            img = Image.open(io.BytesIO(raw)).convert("RGB")
        except Exception as exc:
            raise DataError(f"{path}: cannot decode image {i}: {exc}") from exc
        if img.size != (32, 32):
            raise DataError(f"{path}: image {i} is {img.size}, expected 32 x 32")
        x[i] = np.asarray(img)
    y = np.array([e[1] for e in entries], dtype=np.int64)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().float().div_(255.0)
    return xt, torch.from_numpy(y)


def load_cifar10(data_dir=None, split: str = "train", source: str = "subset", limit: int | None = None):
    """CIFAR-10 as ``(x float32 [n, 3, 32, 32] in [0, 1], y int64 [n])``.

    ``source="subset"``: the lossless pickles in ``<data_dir>/cifar10-subset/cifar-10-batches-py`` (train:
    every ``data_batch_*`` present, here 4,000 images; test: the 1,000-image evaluation subset).
    ``source="jpeg"``: the full JPEG archives ``<data_dir>/cifar10-jpeg/{train,test}.tar.gz`` (lossy, quality
    about 75: train on it, evaluate on the subset); images ordered by (index within class, class).
    """
    _check_split(split)
    _check_limit(limit)
    root = resolve_data_dir(data_dir)
    if source == "subset":
        return _cifar_subset(root, split, limit)
    if source == "jpeg":
        return _cifar_jpeg(root, split, limit)
    raise ValueError(f"source must be 'subset' or 'jpeg', got {source!r}")


def mnist_binary(data_dir=None, split: str = "train", digits: tuple[int, int] = (3, 7),
                 limit: int | None = None):
    """The binary task of the theory: MNIST digit ``digits[0]`` (tau = +1) versus ``digits[1]`` (tau = -1).

    Returns ``(x float32 [n, 1, 28, 28] in [0, 1], y float32 [n] in {+1, -1})``, original order, the
    first ``limit`` matching images.
    """
    a, b = digits
    if a == b or not all(isinstance(d, (int, np.integer)) and 0 <= d <= 9 for d in (a, b)):
        raise ValueError(f"digits must be two distinct integers in 0..9, got {digits!r}")
    _check_limit(limit)
    x, y = load_mnist(data_dir, split)
    keep = (y == a) | (y == b)
    x, y = x[keep], y[keep]
    if limit is not None:
        x, y = x[:limit], y[:limit]
    tau = torch.where(y == a, 1.0, -1.0).to(torch.float32)
    return x, tau


def load_dataset(name: str, data_dir=None, split: str = "train", limit: int | None = None):
    """Dispatch by name: one of :data:`DATASETS`."""
    if name == "mnist":
        return load_mnist(data_dir, split, limit)
    if name == "fashion_mnist":
        # The shared data folder has no Fashion-MNIST: use it only if it holds a fashion-mnist/ subfolder.
        use = data_dir is not None and (Path(data_dir) / "fashion-mnist").is_dir()
        return load_fashion_mnist(data_dir if use else None, split, limit)
    if name == "cifar10":
        return load_cifar10(data_dir, split, "subset", limit)
    if name == "cifar10_jpeg":
        return load_cifar10(data_dir, split, "jpeg", limit)
    if name == "mnist37":
        return mnist_binary(data_dir, split, (3, 7), limit)
    raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")


DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar10_jpeg", "mnist37")


@command
def main(argv=None) -> int:
    """``python -m empirical.data download ...``: see :mod:`empirical.download`."""
    from .download import main as download_main

    return download_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
