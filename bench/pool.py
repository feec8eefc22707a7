"""Forward passes of the MNIST CNNs without autograd (what Square's 5,000 queries and every clean-accuracy pass
run): the models' pool (:func:`empirical.models.max_pool2`, channels-last where no gradient is recorded) against
torch's standard-layout ``F.max_pool2d`` in the same run, same weights and images; ratio = before / after
(> 1: faster now).  Also checks that both give the same logits to the bit.

    python bench/pool.py [--batches 18,100] [--repeats 5] [--calls 40] [--threads 1]

Writes bench/out/pool.json (parameters, machine, versions, git SHA) and prints a table.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from simulate.core.cli import ArgumentParser, number  # noqa: E402  (one-line errors, whole flag names only)


def _standard_forward(model, x):
    """The model's forward with torch's standard-layout pool (the code before max_pool2)."""
    import torch.nn.functional as F

    x = F.max_pool2d(F.relu(model.conv1(x)), 2)
    x = F.max_pool2d(F.relu(model.conv2(x)), 2)
    return model.fc2(F.relu(model.fc1(x.flatten(1))))


def _batches(text: str) -> list[int]:
    """--batches: comma-separated batch sizes, each an integer in [1, 10000]."""
    import argparse

    try:
        sizes = [int(b) for b in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or not all(1 <= n <= 10000 for n in sizes):
        raise argparse.ArgumentTypeError(f"{text!r} (allowed: comma-separated integers in [1, 10000])")
    return sizes


def main(argv=None) -> int:
    p = ArgumentParser(prog="python bench/pool.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=_batches, default="18,100", help="batch sizes, comma-separated [18,100]")
    p.add_argument("--repeats", type=number(int, 1, 1000), default=5, help="timed repeats per row; the median is kept [5]")
    p.add_argument("--calls", type=number(int, 1, 100000), default=40, help="forward passes per repeat [40]")
    p.add_argument("--threads", type=number(int, 1, 1024), default=1)
    p.add_argument("--out", default=str(_ROOT / "bench" / "out" / "pool.json"))
    args = p.parse_args(argv)

    import torch

    from empirical.models import MnistCNN, SmallMnistCNN
    from simulate.provenance import provenance, write_json

    torch.set_num_threads(args.threads)
    rows, lines = [], ["| model | batch | standard pool ms | models' pool ms | ratio | same logits |", "|---|---|---|---|---|---|"]
    for cls in (MnistCNN, SmallMnistCNN):
        torch.manual_seed(0)
        model = cls().eval()
        for n in args.batches:
            x = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(n))
            times = {}
            with torch.no_grad():
                same = bool(torch.equal(model(x), _standard_forward(model, x)))
                for name, f in (("standard", lambda: _standard_forward(model, x)), ("models", lambda: model(x))):
                    f()
                    reps = []
                    for _ in range(args.repeats):
                        t = time.process_time()
                        for _ in range(args.calls):
                            f()
                        reps.append((time.process_time() - t) / args.calls * 1e3)
                    times[name] = statistics.median(reps)
            ratio = times["standard"] / times["models"]
            rows.append({"model": cls.__name__, "batch": n, "standard_ms": times["standard"],
                         "models_ms": times["models"], "ratio": ratio, "same_logits": same})
            lines.append(f"| {cls.__name__} | {n} | {times['standard']:.2f} | {times['models']:.2f} | {ratio:.2f}x | "
                         f"{'yes' if same else 'NO'} |")
    print("\n".join(lines))
    write_json(args.out, {"rows": rows, "table": lines, "timer": "time.process_time (CPU), median of repeats",
                          "provenance": provenance(params={"batches": args.batches, "repeats": args.repeats,
                                                           "calls": args.calls, "threads": args.threads},
                                                   seeds={"torch": 0})})
    return 0 if all(r["same_logits"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
