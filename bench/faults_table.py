"""The numbered fault findings re-run against a checkout: each command, its exit status and what it left on disk.

    python bench/faults_table.py --checkout /tmp/old --label before --out /tmp/faults_before.json
    python bench/faults_table.py --checkout . --label after --out /tmp/faults_after.json
    python bench/faults_table.py --combine /tmp/faults_before.json /tmp/faults_after.json   # the markdown table

Each finding runs in a scratch folder with ``PYTHONPATH=<checkout>`` (one thread, a timeout per command, so a
hang is reported as such).  Faults that need the machine to misbehave are injected into the child process before
the command's module runs (``runpy``): a full disk is ``os.replace`` / ``os.write`` raising ENOSPC, an unreadable
folder is ``open`` / ``os.scandir`` raising EACCES for the paths under it (mode 000 does not stop root).  The
small data sets come from ``tests/data`` of this checkout, MNIST from ``$ADVTRAIN_DATA_DIR`` or ../shared/data.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# the parser only (one-line errors, whole flag names); the findings run in subprocesses on --checkout's code
from simulate.core.cli import ArgumentParser  # noqa: E402

FIXTURE = ROOT / "tests" / "data"

#: run in the child before the command's module: the injected fault (FAULT, FAULT_PATH) and the module itself
PRELUDE = r"""
import errno, os, runpy, sys, builtins
fault, where = os.environ.get("FAULT", ""), os.environ.get("FAULT_PATH", "")
if fault == "enospc":
    def _full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    os.replace = _full
    os.rename = _full
if fault == "eacces":
    _open, _scandir, _listdir = builtins.open, os.scandir, os.listdir
    def _denied(path):
        try:
            return os.path.abspath(os.fspath(path)).startswith(where)
        except TypeError:
            return False
    def _guard(f):
        def g(path=".", *a, **k):
            if _denied(path):
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
            return f(path, *a, **k)
        return g
    builtins.open, os.scandir, os.listdir = _guard(_open), _guard(_scandir), _guard(_listdir)
    import io; io.open = builtins.open
module = sys.argv[1]
sys.argv = ["python -m " + module] + sys.argv[2:]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def _env(checkout: Path, **extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "NUMBA_NUM_THREADS": "1", **{k: str(v) for k, v in extra.items()}}


def run(checkout: Path, cwd: Path, module: str, args: list[str], timeout: float = 120.0, **fault) -> dict:
    """``python -m module args`` (through the prelude) in ``cwd``: exit status ('timeout' after ``timeout`` s),
    the last stderr line, whether stderr holds a traceback, and the peak memory of the child."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", PRELUDE, module, *args], cwd=cwd, env=_env(checkout, **fault),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=timeout)
        code: int | str = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        code = f"none: still running after {timeout:g} s, killed"
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    return {"command": f"python -m {module} {' '.join(args)}", "exit": code, "seconds": round(time.perf_counter() - t0, 1),
            "traceback": any(ln.startswith("Traceback") for ln in lines),
            "stderr_last": lines[-1][:240] if lines else ""}


def start(checkout: Path, cwd: Path, module: str, args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PRELUDE, module, *args], cwd=cwd, env=_env(checkout),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def listing(folder: Path, limit: int = 12) -> str:
    """What is on disk under ``folder``: relative paths with sizes (hidden files too: locks, temporaries)."""
    items = sorted(p for p in folder.rglob("*") if p.is_file())
    text = [f"{p.relative_to(folder)} ({p.stat().st_size} B)" for p in items[:limit]]
    return ", ".join(text) + (f", ... ({len(items)} files)" if len(items) > limit else "") or "nothing"


def _py(checkout: Path, code: str, cwd: Path) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=_env(checkout), capture_output=True, text=True,
                          timeout=300).stdout.strip()


def _mnist_dir() -> Path:
    for cand in (os.environ.get("ADVTRAIN_DATA_DIR"), ROOT.parent / "shared" / "data", Path("/work/shared/data")):
        if cand and (Path(cand) / "mnist").is_dir():
            return Path(cand)
    return FIXTURE


def _idx_gz(path: Path, shape: tuple[int, ...], zeros_after_header: int | None = None) -> None:
    head = struct.pack(">HBB", 0, 0x08, len(shape)) + struct.pack(f">{len(shape)}I", *shape)
    n = int(__import__("math").prod(shape)) if zeros_after_header is None else zeros_after_header
    with gzip.GzipFile(path, "wb", mtime=0, compresslevel=1) as fh:
        fh.write(head)
        block = bytes(1 << 20)
        while n > 0:
            fh.write(block[:min(n, len(block))])
            n -= len(block)


# ---------------------------------------------------------------------------------------------------
# The findings
# ---------------------------------------------------------------------------------------------------
class _Marker:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def f1_malicious_pickle(co: Path, w: Path) -> dict:
    folder = w / "data"
    shutil.copytree(FIXTURE / "cifar10-subset", folder / "cifar10-subset")
    batch_file = folder / "cifar10-subset" / "cifar-10-batches-py" / "test_batch"
    from empirical.data import _unpickle  # the project's reader: admits only what a CIFAR-10 batch holds

    batch = _unpickle(batch_file)  # the committed fixture, written by tests/data/make_fixture.py
    batch[b"extra"] = _Marker(str(w / "MARKER"))
    batch_file.write_bytes(pickle.dumps(batch, protocol=2))
    _py(co, "import torch; from empirical.models import get_model; "
            "torch.save(get_model('preact_resnet18').state_dict(), 'w.pt')", w)
    r = run(co, w, "empirical.evaluate", ["--weights", "w.pt", "--dataset", "cifar10", "--data-dir", "data",
                                          "--test-limit", "2", "--quiet"])
    r["disk"] = "MARKER created: the payload ran" if (w / "MARKER").exists() else "no MARKER: the payload did not run"
    return r


def f2_two_trains(co: Path, w: Path) -> dict:
    args = ["--dataset", "mnist", "--train-limit", "64", "--batch-size", "32", "--epochs", "1", "--test-limit", "20",
            "--data-dir", str(_mnist_dir()), "--threads", "1", "--quiet", "--out", "run"]
    a = start(co, w, "empirical.train", args)
    time.sleep(1.0)
    b = start(co, w, "empirical.train", args)
    ea, eb = a.communicate(timeout=600)[1], b.communicate(timeout=600)[1]
    last = [(e.strip().splitlines() or [""])[-1][:200] for e in (ea, eb)]
    return {"command": "two at once (1 s apart): python -m empirical.train " + " ".join(args),
            "exit": f"{a.returncode} and {b.returncode}", "stderr_last": " | ".join(x for x in last if x),
            "traceback": "Traceback" in ea + eb, "disk": listing(w / "run") if (w / "run").exists() else "nothing"}


SWEEP_A = ["--grid", "rho=1:2:3", "--alphas", "20", "--quiet"]
SWEEP_B = ["--grid", "eps=0:1:4", "--alphas", "20", "--quiet"]


def f3_sweep_over_other(co: Path, w: Path) -> dict:
    first = run(co, w, "simulate.sweep", SWEEP_A + ["--out", "out.nc"])
    before = (w / "out.nc").read_bytes() if (w / "out.nc").exists() else b""
    r = run(co, w, "simulate.sweep", SWEEP_B + ["--out", "out.nc"])
    after = (w / "out.nc").read_bytes() if (w / "out.nc").exists() else b""
    r["disk"] = (f"first sweep exit {first['exit']}; out.nc " + ("kept (the first sweep)" if after == before
                                                                 else "REPLACED by the second sweep"))
    return r


def f4_corrupt_nc(co: Path, w: Path) -> dict:
    run(co, w, "simulate.sweep", SWEEP_A + ["--out", "out.nc"])
    raw = bytearray((w / "out.nc").read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 100] = bytes(100)
    (w / "out.nc").write_bytes(bytes(raw))
    r = run(co, w, "simulate.sweep", SWEEP_A + ["--out", "out.nc"], timeout=120)
    r["disk"] = listing(w)
    return r


def f5_short_block(co: Path, w: Path) -> dict:
    args = ["--grid", "rho=1:2:20", "--alphas", "20", "--chunk", "10", "--keep-parts", "--quiet", "--out", "out.nc"]
    run(co, w, "simulate.sweep", args)
    block = w / "out.nc.parts" / "block_000000.npz"
    if not block.exists():
        return {"command": "(setup)", "exit": "n/a", "stderr_last": f"no {block.name} written", "disk": listing(w)}
    (w / "out.nc").unlink()
    for side in w.glob("out.nc.json"):
        side.unlink()
    code = ("import numpy as np; z = dict(np.load('out.nc.parts/block_000000.npz')); "
            "np.savez('out.nc.parts/block_000000.npz', **{k: (v[:5] if v.ndim and v.shape[0] == 10 else v) "
            "for k, v in z.items()})")
    _py(co, code, w)
    r = run(co, w, "simulate.sweep", args)
    nan = _py(co, "import xarray as xr, numpy as np; ds = xr.open_dataset('out.nc'); "
                  "print(int(np.isnan(ds['R'].values).sum()))", w) if (w / "out.nc").exists() else "no out.nc"
    r["disk"] = f"NaN values of R in out.nc: {nan or '?'}; parts kept: {(w / 'out.nc.parts').exists()}"
    return r


def f6_ode_hang(co: Path, w: Path) -> dict:
    r = run(co, w, "simulate.ode", ["--rho", "0.0001", "--eps", "100", "--erf-scale", "0.001", "--b0", "100", "--R0",
                                    "-1", "--loss", "cross_entropy", "--alpha-max", "10", "--quiet"], timeout=90)
    r["disk"] = "nothing written (no --out)"
    return r


def f7_disk_full(co: Path, w: Path) -> dict:
    base = ["--rho", "2", "--eps", "1", "--alpha-max", "10", "--quiet", "--out", "out.csv"]
    run(co, w, "simulate.ode", base)
    sidecar_before = (w / "out.csv.json").exists()
    r = run(co, w, "simulate.ode", base + ["--eps", "0.5", "--overwrite"], FAULT="enospc")
    r["disk"] = (f"previous out.csv kept: {(w / 'out.csv').exists()}, its sidecar kept: "
                 f"{(w / 'out.csv.json').exists()} (there before: {sidecar_before}); " + listing(w))
    return r


def f8_unreadable(co: Path, w: Path) -> dict:
    shutil.copytree(FIXTURE / "mnist", w / "data" / "mnist")
    _py(co, "import torch; from empirical.models import get_model; "
            "torch.save(get_model('mnist_cnn').state_dict(), 'w.pt')", w)
    r = run(co, w, "empirical.evaluate", ["--weights", "w.pt", "--data-dir", "data", "--test-limit", "2",
                                          "--threats", "linf", "--quiet"],
            FAULT="eacces", FAULT_PATH=str(w / "data"))
    r["disk"] = listing(w, 3)
    return r


def f9_geometry(co: Path, w: Path) -> dict:
    folder = w / "data" / "mnist"
    shutil.copytree(FIXTURE / "mnist", folder)
    _idx_gz(folder / "t10k-images-idx3-ubyte.gz", (10, 32, 32))
    _idx_gz(folder / "t10k-labels-idx1-ubyte.gz", (10,))
    _py(co, "import torch; from empirical.models import get_model; "
            "torch.save(get_model('mnist_cnn').state_dict(), 'w.pt')", w)
    r = run(co, w, "empirical.evaluate", ["--weights", "w.pt", "--data-dir", "data", "--test-limit", "2",
                                          "--threats", "linf", "--quiet", "--out", "eval.json"])
    _idx_gz(folder / "t10k-images-idx3-ubyte.gz", (0, 28, 28))
    _idx_gz(folder / "t10k-labels-idx1-ubyte.gz", (0,))
    r0 = run(co, w, "empirical.evaluate", ["--weights", "w.pt", "--data-dir", "data", "--threats", "linf", "--quiet",
                                           "--out", "eval0.json"])
    return {"command": f"32x32 images: {r['command']}; 0 images: {r0['command']}",
            "exit": f"{r['exit']} (32x32), {r0['exit']} (0 images)", "traceback": r["traceback"] or r0["traceback"],
            "stderr_last": f"{r['stderr_last']} | {r0['stderr_last']}",
            "disk": f"eval.json: {(w / 'eval.json').exists()}, eval0.json: {(w / 'eval0.json').exists()}"}


def f10_gzip_bomb(co: Path, w: Path) -> dict:
    folder = w / "data" / "mnist"
    shutil.copytree(FIXTURE / "mnist", folder)
    # a valid header for 10 images of 28 x 28, followed by 1 GiB of zeros (about 1 MB compressed)
    _idx_gz(folder / "t10k-images-idx3-ubyte.gz", (10, 28, 28), zeros_after_header=1 << 30)
    _py(co, "import torch; from empirical.models import get_model; "
            "torch.save(get_model('mnist_cnn').state_dict(), 'w.pt')", w)
    before = _children_maxrss()
    r = run(co, w, "empirical.evaluate", ["--weights", "w.pt", "--data-dir", "data", "--test-limit", "2",
                                          "--threats", "linf", "--quiet"])
    after = _children_maxrss()
    r["disk"] = (f"peak memory of the children so far: {after / 2**20:.0f} MiB (before this command: "
                 f"{before / 2**20:.0f} MiB); a 1 GiB payload behind a 10-image header")
    return r


def _children_maxrss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


FINDINGS = {
    "1 malicious CIFAR pickle": f1_malicious_pickle,
    "2 two trains, one --out": f2_two_trains,
    "3 sweep over another sweep": f3_sweep_over_other,
    "4 corrupted .nc (100 zeroed bytes)": f4_corrupt_nc,
    "5 stored block with 5 of 10 points": f5_short_block,
    "6 simulate.ode hang case": f6_ode_hang,
    "7 disk full (ENOSPC on rename)": f7_disk_full,
    "8 unreadable data folder (EACCES)": f8_unreadable,
    "9 32x32 IDX / 0 test images": f9_geometry,
    "10 gzip bomb (1 GiB of zeros)": f10_gzip_bomb,
}


def markdown(before: dict, after: dict) -> str:
    def cell(r):
        if r is None:
            return "not run"
        tb = ", traceback" if r.get("traceback") else ""
        r = {**r, "exit": str(r["exit"]).replace("hang (killed after", "none: still running after").replace(
            " s)", " s, killed")}
        return (f"exit {r['exit']}{tb}; {r.get('disk', '')}; stderr: `{r.get('stderr_last', '')[:160]}`"
                .replace("|", "/"))

    lines = [f"| finding | command | before ({before['label']}, {before['sha'][:7]}) | after ({after['label']}, "
             f"{after['sha'][:7]}) |", "|---|---|---|---|"]
    for name in FINDINGS:
        b, a = before["rows"].get(name), after["rows"].get(name)
        cmd = (a or b or {}).get("command", "").replace("|", "/")
        lines.append(f"| {name} | `{cmd}` | {cell(b)} | {cell(a)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = ArgumentParser(prog="python bench/faults_table.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkout", type=Path, default=ROOT, help="the code to run (its PYTHONPATH) [this checkout]")
    p.add_argument("--label", default="after", help="name of the column [after]")
    p.add_argument("--only", default=None, help="comma-separated finding numbers, e.g. 1,3,6")
    p.add_argument("--out", type=Path, default=None, help="write the rows as JSON")
    p.add_argument("--combine", type=Path, nargs=2, default=None, metavar=("BEFORE", "AFTER"),
                   help="print the markdown table of two earlier outputs and exit")
    args = p.parse_args(argv)
    if args.combine:
        before, after = (json.loads(f.read_text()) for f in args.combine)
        print(markdown(before, after))
        return 0
    co = args.checkout.resolve()
    sha = subprocess.run(["git", "-C", str(co), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    wanted = None if args.only is None else {s.strip() for s in args.only.split(",")}
    rows = {}
    for name, fn in FINDINGS.items():
        if wanted is not None and name.split()[0] not in wanted:
            continue
        with tempfile.TemporaryDirectory(prefix="fault-") as tmp:
            try:
                rows[name] = fn(co, Path(tmp))
            except Exception as exc:  # a broken setup is reported, not hidden
                rows[name] = {"command": "(setup)", "exit": "n/a", "stderr_last": f"{type(exc).__name__}: {exc}"}
        r = rows[name]
        print(f"{name:40} exit {r['exit']}  {r.get('disk', '')[:100]}  {r.get('stderr_last', '')[:100]}", flush=True)
        if args.out:
            args.out.write_text(json.dumps({"label": args.label, "sha": sha, "checkout": str(co), "rows": rows},
                                           indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
