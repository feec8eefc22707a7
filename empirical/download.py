"""Fetch the public data sets in their standard formats into a data folder.

    python -m empirical.data download --dataset mnist|fashion_mnist|cifar10 --to DIR [--base-url URL]

Files and their usual public locations (``--base-url`` replaces the location; the file names stay):

* ``mnist``: ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
  ``t10k-labels-idx1-ubyte.gz`` from https://ossci-datasets.s3.amazonaws.com/mnist/ (the copy of
  Y. LeCun's files that PyTorch's data loaders use) into ``DIR/mnist/``;
* ``fashion_mnist``: the same four names from http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/
  (Zalando Research) into ``DIR/fashion-mnist/``;
* ``cifar10``: ``cifar-10-python.tar.gz`` from https://www.cs.toronto.edu/~kriz/ (A. Krizhevsky), unpacked
  into ``DIR/cifar-10-batches-py/``.

Every file is checked against the MD5 published with it. A file is written as ``NAME.part`` and renamed
into place only once its checksum matches, so a folder never holds a half-written data file under its
real name; an interrupted download leaves ``NAME.part``, which the next call resumes with an HTTP Range
request (and restarts from scratch if the server ignores the range or the resumed file fails its
checksum). Files already present with the right checksum are kept.

Exit status: 0 when every file is in place; 2, with one line on stderr, for a bad argument, an unreachable
server, an HTTP error, a checksum mismatch or a folder that cannot be written.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import socket
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from simulate.cli import command

from simulate.core.cli import ArgumentParser as _Parser  # one-line errors, whole flag names only

__all__ = ["Remote", "Source", "SOURCES", "DownloadError", "download", "fetch", "md5_file", "main"]

CHUNK = 1 << 16


@dataclass(frozen=True)
class Remote:
    """One published file: its name under the base URL and its MD5."""

    name: str
    md5: str


@dataclass(frozen=True)
class Source:
    """A data set: where its files live, where they go under the data folder, and whether to unpack."""

    base_url: str
    folder: str
    files: tuple[Remote, ...]
    unpack: str | None = None  # a folder inside the archive to move into DIR, or None


_IDX = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz")
SOURCES: dict[str, Source] = {
    "mnist": Source("https://ossci-datasets.s3.amazonaws.com/mnist/", "mnist", tuple(map(Remote, _IDX, (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
        "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")))),
    "fashion_mnist": Source("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", "fashion-mnist",
                            tuple(map(Remote, _IDX, (
                                "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                                "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")))),
    "cifar10": Source("https://www.cs.toronto.edu/~kriz/", "",
                      (Remote("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
                      unpack="cifar-10-batches-py"),
}


class DownloadError(RuntimeError):
    """A download could not be completed (the message is one line naming the URL or file)."""


def md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _reason(err: BaseException) -> str:
    reason = getattr(err, "reason", err)
    return str(reason) or type(reason).__name__


def _transfer(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Append the rest of ``url`` to ``part`` (Range request when ``part`` is non-empty)."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to fetch: the part is complete (or wrong; checked next)
            return
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError) as err:
        raise DownloadError(f"cannot reach {url}: {_reason(err)} (network unreachable? see --base-url)") from None
    with response:
        resumed = have > 0 and response.status == 206
        total = response.headers.get("Content-Length")
        total = int(total) + (have if resumed else 0) if total and total.isdigit() else None
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=have if resumed else 0, unit="B", unit_scale=True,
                       desc=part.name[:-len(".part")], leave=False)
        try:
            with open(part, "ab" if resumed else "wb") as fh:
                while True:
                    try:
                        block = response.read(CHUNK)
                    except (socket.timeout, ConnectionError, urllib.error.URLError, http.client.HTTPException) as err:
                        raise DownloadError(f"{url}: connection lost ({_reason(err)}); run the command again "
                                            "to resume") from None
                    if not block:
                        break
                    fh.write(block)
                    if bar is not None:
                        bar.update(len(block))
                fh.flush()
                os.fsync(fh.fileno())
                size = fh.tell()
        finally:
            if bar is not None:
                bar.close()
    if total is not None and size < total:
        raise DownloadError(f"{url}: connection lost after {size} of {total} bytes; run the command again "
                            "to resume")


def fetch(url: str, dest: Path, md5: str, *, timeout: float = 30.0, progress: bool = False,
          log: Callable[[str], None] = lambda s: None) -> bool:
    """Put the file at ``url`` with checksum ``md5`` at ``dest``; False if it was already there."""
    if dest.is_file() and md5_file(dest) == md5:
        log(f"{dest}: present, checksum ok")
        return False
    part = dest.with_name(dest.name + ".part")
    for attempt in range(2):
        resumed = part.exists() and part.stat().st_size > 0
        _transfer(url, part, timeout, progress)
        got = md5_file(part)
        if got == md5:
            os.replace(part, dest)
            log(f"{dest}: downloaded, checksum ok")
            return True
        part.unlink()
        if not resumed:
            break  # a fresh download with the wrong checksum: retrying would fetch the same bytes
    raise DownloadError(f"{url}: MD5 {got} differs from the published {md5} (file removed)")


def _unpack(archive: Path, member: str, to: Path) -> None:
    """Extract folder ``member`` of ``archive`` and rename it to ``to/member`` (atomically replaced)."""
    target = to / member
    if target.is_dir():
        return
    with tempfile.TemporaryDirectory(prefix=f".{member}.", dir=to) as tmp:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError) as err:
            raise DownloadError(f"cannot unpack {archive}: {err}") from None
        if not (Path(tmp) / member).is_dir():
            raise DownloadError(f"{archive} has no folder {member!r}")
        os.replace(Path(tmp) / member, target)


def download(dataset: str, to: str | os.PathLike, *, base_url: str | None = None, timeout: float = 30.0,
             progress: bool = False, log: Callable[[str], None] = lambda s: None) -> Path:
    """Fetch ``dataset`` (a key of :data:`SOURCES`) into the data folder ``to``; returns its folder."""
    if dataset not in SOURCES:
        raise DownloadError(f"--dataset must be one of {', '.join(SOURCES)}, got {dataset!r}")
    source = SOURCES[dataset]
    base = (base_url or source.base_url).rstrip("/") + "/"
    root = Path(to)
    folder = root / source.folder if source.folder else root
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(f"--to: cannot create {folder}: {err.strerror or err}") from None
    if not os.access(folder, os.W_OK):
        raise DownloadError(f"--to: {folder} is not writable")
    for remote in source.files:
        try:
            fetch(base + remote.name, folder / remote.name, remote.md5, timeout=timeout, progress=progress,
                  log=log)
        except OSError as err:
            raise DownloadError(f"--to: cannot write {folder / remote.name}: {err.strerror or err}") from None
        if source.unpack:
            _unpack(folder / remote.name, source.unpack, folder)
    return folder / source.unpack if source.unpack else folder


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m empirical.data",
                     description="Data-set tools. 'download' fetches the standard files of a public data set "
                                 "into a data folder, checks their MD5 and resumes a partial download.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    dl = sub.add_parser("download", help="fetch a data set into --to", formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="\n\n".join(__doc__.split("\n\n")[1:]))
    dl.add_argument("--dataset", required=True, choices=tuple(SOURCES), help="which data set")
    dl.add_argument("--to", "--data-dir", dest="to", type=Path, required=True, metavar="DIR",
                    help="data folder (created if missing); later commands read it with --data-dir DIR")
    dl.add_argument("--base-url", default=None, metavar="URL",
                    help="where the files are (http:// or https://, or file://) [the dataset's public location]")
    dl.add_argument("--timeout", type=float, default=30.0, metavar="S",
                    help="seconds to wait for the server (0 < S <= 3600) [30]")
    dl.add_argument("--quiet", action="store_true", help="no progress bars, print nothing but errors")
    return parser


@command
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (0 < args.timeout <= 3600):  # also rejects nan
        parser.error(f"--timeout must lie in (0, 3600] seconds, got {args.timeout}")
    if args.base_url is not None and not args.base_url.startswith(("http://", "https://", "file://")):
        parser.error(f"--base-url must start with http://, https:// or file://, got {args.base_url!r}")
    if args.to.exists() and not args.to.is_dir():
        parser.error(f"--to: {args.to} exists and is not a folder")
    log = (lambda s: None) if args.quiet else print
    try:
        folder = download(args.dataset, args.to, base_url=args.base_url, timeout=args.timeout,
                          progress=not args.quiet, log=log)
    except DownloadError as err:
        print(f"{parser.prog} download: error: {err}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"{args.dataset} is in {folder}; use --data-dir {args.to}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
