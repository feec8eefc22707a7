"""Attack throughput: images x attack-steps per second for PGD-l_inf and APGD-l_1 on the MNIST CNN.

Each of our attacks is timed against a plain reference loop written the obvious way, in the same run, on
the same model, images and device (ratio = ours / reference; > 1 means ours is faster):

* PGD-l_inf reference: ``loss = cross_entropy(model(x), y); loss.backward()`` (mean loss, parameter
  gradients accumulated too), sign step, clip to the eps-box and to [0, 1].
* APGD-l_1 reference: the plain sparse l_1 PGD loop (top-1% sign step) with the textbook projection done
  example by example in a Python loop (Duchi et al.'s sorting projection onto the l_1 ball, then a clip
  to the box, which is not even the exact projection onto the intersection).

Our attacks do more per step than the references (per-example best-point tracking; APGD's momentum,
step-size schedule and exact ball ∩ box projection), so the ratio measures what that costs or saves.

    python -m bench.attacks [--device cuda] [--batch 100] [--steps 20] [--repeats 3] [--threads 2]

Writes bench/out/attacks.json (parameters, machine, versions, git SHA) and prints a table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))


def _reference_pgd_linf(model, x, y, eps, alpha, steps):
    import torch
    import torch.nn.functional as F

    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        loss.backward()
        with torch.no_grad():
            x_adv = x_adv + alpha * x_adv.grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    model.zero_grad(set_to_none=True)
    return x_adv.detach()


def _reference_pgd_l1(model, x, y, eps, alpha, steps, q=99.0):
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        loss.backward()
        with torch.no_grad():
            g = x_adv.grad.reshape(n, -1)
            k = max(1, int(round((1 - q / 100) * g.shape[1])))
            thresh = g.abs().topk(k, dim=1).values[:, -1:]
            e = torch.where(g.abs() >= thresh, g.sign(), torch.zeros_like(g))
            e = e / e.abs().sum(1, keepdim=True)
            r = (x_adv.reshape(n, -1) + alpha * e) - x.reshape(n, -1)
            for i in range(n):  # the obvious per-example projection
                a = r[i].abs()
                if a.sum() > eps:
                    u, _ = a.sort(descending=True)
                    css = u.cumsum(0)
                    ks = torch.arange(1, len(u) + 1, dtype=u.dtype)
                    rho = torch.nonzero(u * ks > css - eps)[-1, 0]
                    lam = (css[rho] - eps) / (rho + 1)
                    r[i] = r[i].sign() * (a - lam).clamp_min(0)
            x_adv = (x.reshape(n, -1) + r).clamp(0, 1).reshape(x.shape)
    model.zero_grad(set_to_none=True)
    return x_adv.detach()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(_ROOT / "bench" / "out" / "attacks.json"))
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    for name in ("batch", "steps", "repeats", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")

    import torch

    from empirical.attacks import APGD, PGD
    from empirical.data import DataError, load_mnist
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
        x, y = load_mnist(args.data_dir, "test", limit=args.batch)
    except DataError as exc:
        p.error(str(exc))
    torch.manual_seed(args.seed)
    model = MnistCNN().to(device).eval()
    x, y = x.to(device), y.to(device)
    linf, l1 = get_threat("linf", "mnist"), get_threat("l1", "mnist")
    steps = args.steps
    cases = {
        "pgd_linf": {
            "ours": lambda g: PGD(linf, steps=steps, alpha=0.01, random_start=False)(model, x, y, g),
            "reference": lambda g: _reference_pgd_linf(model, x, y, linf.eps, 0.01, steps),
        },
        "apgd_l1": {
            "ours": lambda g: APGD(l1, steps=steps, random_start=False)(model, x, y, g),
            "reference": lambda g: _reference_pgd_l1(model, x, y, l1.eps, 1.0, steps),
        },
    }

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    rows = []
    for name, impls in cases.items():
        for fn in impls.values():
            fn(torch.Generator().manual_seed(args.seed))  # warm-up
        times = {impl: [] for impl in impls}
        # Interleave ours and the reference, so that load from other processes hits both alike.
        for _ in range(args.repeats):
            for impl, fn in impls.items():
                sync()
                t0 = time.perf_counter()
                fn(torch.Generator().manual_seed(args.seed))
                sync()
                times[impl].append(time.perf_counter() - t0)
        res = {}
        for impl, ts in times.items():
            med = statistics.median(ts)
            res[impl] = {"seconds_median": med, "seconds_all": ts, "image_steps_per_s": args.batch * steps / med}
        ratio = res["ours"]["image_steps_per_s"] / res["reference"]["image_steps_per_s"]
        rows.append({"attack": name, "device": str(device), **{f"{k}_image_steps_per_s": v["image_steps_per_s"]
                                                                 for k, v in res.items()},
                     "ratio_ours_over_reference": ratio, "detail": res})
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({args.threads} threads)"
    header = f"{'attack':10s} {'device':28s} {'ours img*step/s':>16s} {'reference':>12s} {'ratio':>7s}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['attack']:10s} {dev_name:28s} {r['ours_image_steps_per_s']:16.1f} "
                     f"{r['reference_image_steps_per_s']:12.1f} {r['ratio_ours_over_reference']:7.2f}")
    print("\n".join(lines))
    write_json(args.out, {"rows": rows, "table": lines,
                          "provenance": provenance(params={"batch": args.batch, "steps": steps,
                                                           "repeats": args.repeats, "threads": args.threads,
                                                           "model": "mnist_cnn (random init)",
                                                           "eps": {"linf": linf.eps, "l1": l1.eps}},
                                                   seeds={"model": args.seed}, device=dev_name)})
    if not args.quiet:
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
