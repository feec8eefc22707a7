"""``python -m empirical.data download`` against a loopback HTTP server that serves the fixture files.

Nothing here reaches any address but 127.0.0.1: every call passes ``--base-url http://127.0.0.1:PORT/``
and the published checksums are replaced by those of the fixture files. The server honours HTTP Range
(``http.server`` alone does not), records every request, and can cut a response short to simulate a lost
connection.
"""

import hashlib
import http.server
import io
import os
import socket
import tarfile
import threading
from pathlib import Path

import pytest

from empirical import download as D
from tests.conftest import FIXTURE_DIR

MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
               "t10k-labels-idx1-ubyte.gz")


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    log: list[tuple[str, str | None]] = []
    cut_after: int | None = None  # send only this many bytes of a full (200) response, then close

    def log_message(self, *args):  # keep pytest's output clean
        pass

    def do_GET(self):
        name = self.path.lstrip("/")
        rng = self.headers.get("Range")
        type(self).log.append((name, rng))
        body = self.files.get(name)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[len("bytes="):-1])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.cut_after is not None and start == 0:
            self.wfile.write(payload[:self.cut_after])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(payload)


@pytest.fixture()
def server(monkeypatch):
    files = {name: (FIXTURE_DIR / "mnist" / name).read_bytes() for name in MNIST_FILES}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(FIXTURE_DIR / "cifar10-subset" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    files["cifar-10-python.tar.gz"] = buf.getvalue()
    handler = type("Handler", (_Handler,), {"files": files, "log": [], "cut_after": None})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    md5 = {name: hashlib.md5(body).hexdigest() for name, body in files.items()}
    for key, src in D.SOURCES.items():
        monkeypatch.setitem(D.SOURCES, key, D.Source(src.base_url, src.folder,
                                                     tuple(D.Remote(r.name, md5[r.name]) for r in src.files),
                                                     src.unpack))
    yield handler, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _main(argv):
    from empirical.data import main

    return main(["download", "--quiet", *argv])


def test_mnist_download_then_load(server, tmp_path):
    handler, url = server
    assert _main(["--dataset", "mnist", "--to", str(tmp_path), "--base-url", url]) == 0
    for name in MNIST_FILES:
        assert (tmp_path / "mnist" / name).read_bytes() == (FIXTURE_DIR / "mnist" / name).read_bytes()
    assert not list(tmp_path.rglob("*.part"))
    torch = pytest.importorskip("torch")
    from empirical.data import load_mnist

    x, y = load_mnist(tmp_path, "test")
    assert x.shape == (300, 1, 28, 28) and y.dtype == torch.int64
    # A second call finds every file in place and fetches nothing.
    n = len(handler.log)
    assert _main(["--dataset", "mnist", "--data-dir", str(tmp_path), "--base-url", url]) == 0
    assert len(handler.log) == n


def test_cifar10_download_unpacks_the_batches(server, tmp_path):
    _, url = server
    assert _main(["--dataset", "cifar10", "--to", str(tmp_path), "--base-url", url]) == 0
    folder = tmp_path / "cifar-10-batches-py"
    assert sorted(p.name for p in folder.iterdir()) == ["batches.meta", "data_batch_1", "test_batch"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    pytest.importorskip("torch")
    from empirical.data import load_cifar10

    assert load_cifar10(tmp_path, "test")[0].shape == (40, 3, 32, 32)


def test_a_partial_file_is_resumed_with_a_range_request(server, tmp_path):
    handler, url = server
    name = "train-images-idx3-ubyte.gz"
    body = handler.files[name]
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / (name + ".part")).write_bytes(body[:1000])
    assert _main(["--dataset", "mnist", "--to", str(tmp_path), "--base-url", url]) == 0
    assert (name, "bytes=1000-") in handler.log
    assert (tmp_path / "mnist" / name).read_bytes() == body


def test_a_lost_connection_leaves_a_part_that_the_next_call_resumes(server, tmp_path, capsys):
    handler, url = server
    handler.cut_after = 5000
    rc = _main(["--dataset", "mnist", "--to", str(tmp_path), "--base-url", url])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    part = tmp_path / "mnist" / "train-images-idx3-ubyte.gz.part"
    assert not (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").exists()  # nothing under the real name
    assert part.exists(), err
    assert 0 < part.stat().st_size <= 5000
    handler.cut_after = None
    size, n = part.stat().st_size, len(handler.log)
    assert _main(["--dataset", "mnist", "--to", str(tmp_path), "--base-url", url]) == 0
    assert handler.log[n] == ("train-images-idx3-ubyte.gz", f"bytes={size}-")
    assert (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").read_bytes() == handler.files[
        "train-images-idx3-ubyte.gz"]


def test_a_wrong_partial_is_detected_and_fetched_again(server, tmp_path):
    handler, url = server
    name = "t10k-labels-idx1-ubyte.gz"
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / (name + ".part")).write_bytes(b"\0" * 50)  # not a prefix of the real file
    assert _main(["--dataset", "mnist", "--to", str(tmp_path), "--base-url", url]) == 0
    assert (tmp_path / "mnist" / name).read_bytes() == handler.files[name]
    assert [r for n, r in handler.log if n == name] == ["bytes=50-", None]


def test_a_checksum_mismatch_is_one_line_and_leaves_nothing(server, tmp_path, capsys, monkeypatch):
    handler, url = server
    src = D.SOURCES["mnist"]
    monkeypatch.setitem(D.SOURCES, "mnist", D.Source(src.base_url, src.folder,
                                                     (D.Remote(src.files[0].name, "0" * 32),), None))
    assert _main(["--dataset", "mnist", "--to", str(tmp_path), "--base-url", url]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "MD5" in err and "differs" in err
    assert list((tmp_path / "mnist").iterdir()) == []


def test_unreachable_server_is_one_line_exit_2(tmp_path, capsys):
    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc = _main(["--dataset", "fashion_mnist", "--to", str(tmp_path), "--base-url", f"http://127.0.0.1:{port}/"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "cannot reach" in err, err


@pytest.mark.parametrize("argv, flag", [
    (["--dataset", "svhn", "--to", "x"], "--dataset"),
    (["--dataset", "mnist"], "--to"),
    (["--dataset", "mnist", "--to", "x", "--timeout", "nan"], "--timeout"),
    (["--dataset", "mnist", "--to", "x", "--timeout", "0"], "--timeout"),
    (["--dataset", "mnist", "--to", "x", "--base-url", "ftp://h/"], "--base-url"),
])
def test_bad_arguments_exit_2(argv, flag, capsys):
    with pytest.raises(SystemExit) as exc:
        _main(argv)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1 and flag in err, err


def test_to_under_a_regular_file_is_one_line(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    for target in (tmp_path / "f", tmp_path / "f" / "sub"):
        try:
            rc = _main(["--dataset", "mnist", "--to", str(target), "--base-url", "http://127.0.0.1:9/"])
        except SystemExit as exc:
            rc = exc.code
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and "--to" in err, err
