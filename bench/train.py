"""Cost of each training scheme on MNIST: seconds per epoch and the ratio to single-threat training.

    python bench/train.py                 # CPU: 5 batches of 100 per scheme, extrapolated to 60,000 images
    python bench/train.py --device cuda --batches 50
    python bench/train.py --device cuda --rows max,msd   # only those rows (keys: natural, adv_linf, ..., mng_ac)

Every scheme runs through the real training loop (empirical.train.train) on the same images with the
training attacks' default step counts (PGD/SLIDE-10; MSD 10 steps), after one warm-up batch of the same
scheme.  Seconds per epoch = measured seconds per batch x (60,000 / batch size): an extrapolation from
``--batches`` batches, stated in the output.  The baseline is single-threat l_inf adversarial training
(Adv_inf) measured in the same run; the claim under test (Tramer & Boneh 2019) is that 'max' and 'avg'
cost several times single-threat training and SAT about the same.  Writes bench/out/train.json
(provenance: parameters, machine, versions, git SHA), rewritten after every row with ``"complete": false``
until the last one, so that a run stopped by a time limit keeps the rows it measured.  Mixed precision is
the training loop's default: bfloat16 autocast on CUDA, none on CPU (recorded as ``amp``).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulate.core.cli import ArgumentParser  # noqa: E402  (one-line errors, whole flag names only)

ROWS = [("natural", ()), ("adv", ("linf",)), ("adv", ("l1",)), ("adv", ("l2",)), ("avg", ("linf", "l1", "l2")),
        ("max", ("linf", "l1", "l2")), ("msd", ("linf", "l1", "l2")), ("sat", ("linf", "l1", "l2")),
        ("mng_ac", ("linf", "l1", "l2"))]
EPOCH_IMAGES = 60_000


def row_key(scheme: str, threats) -> str:
    """The row's name for ``--rows``: the scheme, or adv_<threat> for single-threat training."""
    return f"adv_{threats[0]}" if scheme == "adv" else scheme


def measure(scheme, threats, args, tmp: Path) -> float:
    """Seconds per batch of the training loop (warm-up batch excluded)."""
    from empirical.train import TrainConfig, train

    def run(n_batches: int, tag: str) -> float:
        cfg = TrainConfig(dataset="mnist", scheme=scheme, threats=threats, train_limit=n_batches * args.batch_size,
                          batch_size=args.batch_size, epochs=1, seed=0)
        res = train(cfg, tmp / f"{scheme}_{'_'.join(threats)}_{tag}", data_dir=args.data_dir, device=args.device,
                    resume=False, quiet=True)
        return res["train_seconds"]

    run(1, "warm")
    return run(args.batches, "timed") / args.batches


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, default=5, help="timed batches per scheme (>= 1)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--rows", default="all", help="comma-separated rows to measure: "
                   + ",".join(row_key(*r) for r in ROWS) + " [default: all]")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "train.json")
    args = p.parse_args(argv)
    if args.batches < 1 or args.batch_size < 1 or args.threads < 1:
        p.error("--batches, --batch-size and --threads must be >= 1")
    keys = [row_key(*r) for r in ROWS]
    wanted = keys if args.rows == "all" else [k.strip() for k in args.rows.split(",") if k.strip()]
    if not wanted or any(k not in keys for k in wanted):
        p.error(f"--rows: must be 'all' or names from {keys}, got {args.rows!r}")
    import torch

    from simulate.provenance import provenance, write_json

    torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    device = args.device + (f" ({torch.cuda.get_device_name()})" if cuda else " (CPU)")
    amp = "bfloat16 autocast" if cuda else "off"
    params = {"batches": args.batches, "batch_size": args.batch_size, "device": device, "threads": args.threads,
              "epoch_images": EPOCH_IMAGES, "attack_steps": "training defaults (PGD/SLIDE-10, MSD 10)",
              "amp": amp, "rows": wanted, "extrapolated": True}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scheme, threats in ROWS:
            if row_key(scheme, threats) not in wanted:
                continue
            t0 = time.perf_counter()
            spb = measure(scheme, threats, args, Path(tmp))
            rows.append({"key": row_key(scheme, threats), "scheme": scheme, "threats": list(threats),
                         "seconds_per_batch": spb, "seconds_per_epoch": spb * EPOCH_IMAGES / args.batch_size,
                         "wall_seconds": time.perf_counter() - t0})
            print(f"{scheme:8s} {','.join(threats):12s} {spb:8.3f} s/batch", flush=True)
            complete = len(rows) == len(wanted)
            text = _table(rows, args, device, amp)
            if complete:
                print(text)
            write_json(args.out, {"rows": rows, "baseline": "adv linf", "complete": complete, "table_text": text,
                                  "provenance": provenance(params=params, seeds={"seed": 0})})
    return 0


def _table(rows, args, device: str, amp: str) -> str:
    """Fill in each row's ratio to the Adv_inf row (None without it) and return the text table."""
    base = next((r["seconds_per_batch"] for r in rows if r["key"] == "adv_linf"), None)
    for r in rows:
        r["ratio_to_adv_linf"] = None if base is None else r["seconds_per_batch"] / base
    lines = [f"MNIST, MnistCNN, batch {args.batch_size}, {args.batches} timed batches per scheme, device {device}, "
             f"amp {amp}, {args.threads} thread(s); s/epoch extrapolated to {EPOCH_IMAGES} images",
             f"{'scheme':8s} {'threats':12s} {'s/batch':>8s} {'s/epoch':>9s} {'x Adv_inf':>9s}"]
    for r in rows:
        ratio = "-" if r["ratio_to_adv_linf"] is None else f"{r['ratio_to_adv_linf']:9.2f}"
        lines.append(f"{r['scheme']:8s} {','.join(r['threats']):12s} {r['seconds_per_batch']:8.3f} "
                     f"{r['seconds_per_epoch']:9.0f} {ratio:>9s}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
