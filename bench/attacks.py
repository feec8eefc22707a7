"""Attack throughput: images x attack-steps per second of our APGD-CE (l_inf, l_2, l_1) and APGD-T (l_inf, l_1)
against the reference AutoAttack implementation (fra31/auto-attack), in the same run, on the same model,
images and device (ratio = ours / reference; > 1 means ours is faster).

The reference is imported at run time from a fetched copy outside the repository (``--ref``, default
/work/ref/auto-attack; never vendored). Without it the reference columns are skipped and only our numbers are
printed. Both sides attack every image for every step: the labels are the model's own predictions (so no
point is misclassified at the start), one restart, APGD-T with one target class, l_1 with the large-budget
schedule (use_largereps) on both sides.

    python bench/attacks.py [--device cuda] [--batch 100] [--steps 20] [--repeats 3] [--threads 1] [--ref PATH]

Writes bench/out/attacks.json (parameters, machine, versions, git SHA, reference commit) and prints a table.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from simulate.core.cli import ArgumentParser  # noqa: E402  (one-line errors, whole flag names only)

AA_NORM = {"linf": "Linf", "l2": "L2", "l1": "L1"}
CASES = (("apgd_ce", "linf"), ("apgd_ce", "l2"), ("apgd_ce", "l1"), ("apgd_t", "linf"), ("apgd_t", "l1"))


def _reference(ref: Path):
    """The reference's APGD classes and its commit, or (None, None) when the copy is absent."""
    if not (ref / "autoattack" / "autopgd_base.py").is_file():
        return None, None
    sys.path.insert(0, str(ref))
    from autoattack.autopgd_base import APGDAttack, APGDAttack_targeted

    try:
        sha = subprocess.run(["git", "-C", str(ref), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        sha = None
    return (APGDAttack, APGDAttack_targeted), sha


def main(argv=None) -> int:
    p = ArgumentParser(prog="python bench/attacks.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--model", default=None, help="a trained model file (default: a random-init mnist_cnn)")
    p.add_argument("--arch", default=None)
    p.add_argument("--ref", type=Path, default=Path("/work/ref/auto-attack"), help="fetched fra31/auto-attack")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(_ROOT / "bench" / "out" / "attacks.json"))
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    for name in ("batch", "steps", "repeats", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")

    import torch

    from empirical.attacks import APGD, APGDT
    from empirical.data import DataError, load_mnist
    from empirical.evaluate import load_model
    from empirical.models import MnistCNN
    from empirical.threats import get_threat
    from empirical.utils import get_device
    from simulate.provenance import provenance, write_json

    try:
        device = get_device(args.device)
    except ValueError as exc:
        p.error(str(exc))
    torch.set_num_threads(args.threads)
    try:
        x, _ = load_mnist(args.data_dir, "test", limit=args.batch)
    except DataError as exc:
        p.error(str(exc))
    torch.manual_seed(args.seed)
    if args.model:
        model, arch = load_model(args.model, args.arch)
    else:
        model, arch = MnistCNN(), "mnist_cnn (random init)"
    model = model.to(device).eval()
    for q in model.parameters():
        q.requires_grad_(False)
    x = x.to(device)
    with torch.no_grad():
        y = model(x).argmax(1)  # every point starts correctly classified: all are attacked for every step
    ref_classes, ref_sha = _reference(args.ref)
    steps = args.steps

    def ours(kind, norm):
        t = get_threat(norm, "mnist")
        if kind == "apgd_ce":
            atk = APGD(t, steps=steps, loss="ce")
        else:
            atk = APGDT(t, steps=steps, n_target_classes=1)
        return lambda: atk(model, x, y, torch.Generator().manual_seed(args.seed))

    def reference(kind, norm):
        if ref_classes is None:
            return None
        t = get_threat(norm, "mnist")
        common = dict(n_iter=steps, norm=AA_NORM[norm], eps=t.eps, n_restarts=1, seed=args.seed,
                      device=str(device), use_largereps=norm == "l1")
        if kind == "apgd_ce":
            atk = ref_classes[0](model, loss="ce", **common)
        else:
            atk = ref_classes[1](model, n_target_classes=1, **common)
        return lambda: atk.perturb(x, y)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    rows = []
    for kind, norm in CASES:
        impls = {"ours": ours(kind, norm), "reference": reference(kind, norm)}
        impls = {k: v for k, v in impls.items() if v is not None}
        for fn in impls.values():
            fn()  # warm-up
        times = {impl: [] for impl in impls}
        # Interleave ours and the reference, so that load from other processes hits both alike.
        for _ in range(args.repeats):
            for impl, fn in impls.items():
                sync()
                t0 = time.process_time() if device.type == "cpu" else time.perf_counter()
                fn()
                sync()
                times[impl].append((time.process_time() if device.type == "cpu" else time.perf_counter()) - t0)
        res = {impl: {"seconds_median": statistics.median(ts), "seconds_all": ts,
                      "image_steps_per_s": args.batch * steps / statistics.median(ts)} for impl, ts in times.items()}
        ratio = (res["ours"]["image_steps_per_s"] / res["reference"]["image_steps_per_s"]
                 if "reference" in res else None)
        rows.append({"attack": f"{kind}_{norm}", "device": str(device),
                     "ours_image_steps_per_s": res["ours"]["image_steps_per_s"],
                     "reference_image_steps_per_s": res.get("reference", {}).get("image_steps_per_s"),
                     "ratio_ours_over_reference": ratio, "detail": res})
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({args.threads} threads)"
    header = f"{'attack':14s} {'device':18s} {'ours img*step/s':>16s} {'reference':>12s} {'ratio':>7s}"
    lines = [header, "-" * len(header)]
    for r in rows:
        ref_s = f"{r['reference_image_steps_per_s']:12.1f}" if r["reference_image_steps_per_s"] else f"{'-':>12s}"
        rat_s = f"{r['ratio_ours_over_reference']:7.2f}" if r["ratio_ours_over_reference"] else f"{'-':>7s}"
        lines.append(f"{r['attack']:14s} {dev_name:18s} {r['ours_image_steps_per_s']:16.1f} {ref_s} {rat_s}")
    if ref_classes is None:
        lines.append(f"(reference columns skipped: no fra31/auto-attack copy at {args.ref})")
    print("\n".join(lines))
    timer = "process CPU time (time.process_time)" if device.type == "cpu" else "wall time with CUDA sync"
    write_json(args.out, {"rows": rows, "table": lines, "timer": timer,
                          "provenance": provenance(params={"batch": args.batch, "steps": steps,
                                                           "repeats": args.repeats, "threads": args.threads,
                                                           "model": arch, "model_file": args.model,
                                                           "reference": str(args.ref) if ref_classes else None,
                                                           "reference_commit": ref_sha},
                                                   seeds={"model": args.seed}, device=dev_name)})
    if not args.quiet:
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
