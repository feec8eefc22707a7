"""Which ingredient of APGD-l_1 matters: l_1 10 accuracy of one model under APGD-CE variants (100 steps, one
restart, the first ``--n`` MNIST test images):

* ``old``: this project's l_1 APGD before the rewrite (gradient magnitudes on the top-k coordinates, k = 10% then
  the sparsity of the best point when the step halves, no large-budget phase), run from an export of that
  commit (``--old-tree``); ``old_sign``: the same with sign steps;
* ``new_nolarge``: :class:`empirical.attacks.APGD` without the 3/2/1 eps schedule; ``new``: with it (default);
  ``new_boxblind``: with it, but the top-k chosen among all coordinates (as the reference code does);
* ``ref``: AutoAttack's APGD-CE-l_1 with use_largereps (fetched copy, ``--ref``).

    python bench/l1_variants.py --model runs/adv_linf_3ep/model.pt --n 100 --out runs/l1_variants.json
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _fresh_empirical(tree: Path | None):
    for m in [k for k in sys.modules if k == "empirical" or k.startswith("empirical.")]:
        del sys.modules[m]
    if tree is not None:
        sys.path.insert(0, str(tree))
    mod = importlib.import_module("empirical.attacks")
    if tree is not None:
        sys.path.remove(str(tree))
    return mod


def main(argv=None) -> int:
    from simulate.core.cli import ArgumentParser  # one-line errors, whole flag names only

    p = ArgumentParser(prog="python bench/l1_variants.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--arch", default=None)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--eps", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", type=Path, default=Path("/work/shared/data"))
    p.add_argument("--old-tree", type=Path, default=Path("/work/ref/old"))
    p.add_argument("--ref", type=Path, default=Path("/work/ref/auto-attack"))
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    import torch

    from simulate.provenance import provenance, write_json

    torch.set_num_threads(args.threads)
    from empirical.data import load_mnist
    from empirical.evaluate import load_model
    from empirical.threats import L1Ball

    model, arch = load_model(args.model, args.arch)
    model = model.float().eval()
    for q in model.parameters():
        q.requires_grad_(False)
    x, y = load_mnist(args.data_dir, "test", limit=args.n)
    with torch.no_grad():
        clean = model(x).argmax(1) == y
    th = L1Ball(eps=args.eps)

    def acc(xa):
        assert bool(th.contains(xa, x, rtol=1e-4).all()), "a returned point left ball ∩ box"
        with torch.no_grad():
            return float((clean & (model(xa).argmax(1) == y)).float().mean())

    variants = {}
    import empirical.attacks as cur
    variants["new_nolarge"] = lambda: cur.APGD(th, steps=100, use_largereps=False)
    variants["new"] = lambda: cur.APGD(th, steps=100)

    class BoxBlind(cur.APGD):
        @staticmethod
        def _l1_direction(t, x_adv, grad, k):
            return t.sparse_direction(x_adv, grad, k=k, signed=True, box=False)

    variants["new_boxblind"] = lambda: BoxBlind(th, steps=100)
    out = {}
    for name, make in variants.items():
        t0 = time.process_time()
        out[name] = {"accuracy": acc(make()(model, x, y, torch.Generator().manual_seed(0))),
                     "cpu_seconds": time.process_time() - t0}
        print(name, out[name], flush=True)
    if (args.old_tree / "empirical" / "attacks" / "apgd.py").is_file():
        old = _fresh_empirical(args.old_tree)
        old_th = importlib.import_module("empirical.threats").L1Ball(eps=args.eps)
        for name, signed in (("old", False), ("old_sign", True)):
            atk = old.APGD(old_th, steps=100)
            if signed:
                atk._direction = (lambda a: (lambda x_adv, grad, k_s: a.threat.sparse_direction(
                    x_adv, grad, k=k_s, signed=True) * a.threat.eps))(atk)
            t0 = time.process_time()
            out[name] = {"accuracy": acc(atk(model, x, y, torch.Generator().manual_seed(0))),
                         "cpu_seconds": time.process_time() - t0}
            print(name, out[name], flush=True)
        _fresh_empirical(None)
    if (args.ref / "autoattack" / "autopgd_base.py").is_file():
        sys.path.insert(0, str(args.ref))
        from autoattack.autopgd_base import APGDAttack

        ref = APGDAttack(model, n_iter=100, norm="L1", eps=args.eps, n_restarts=1, seed=0, device="cpu",
                         use_largereps=True, loss="ce")
        t0 = time.process_time()
        out["ref"] = {"accuracy": acc(ref.perturb(x, y)), "cpu_seconds": time.process_time() - t0}
        print("ref", out["ref"], flush=True)
    write_json(args.out, {"variants": out, "n": args.n, "eps": args.eps, "model": str(args.model),
                          "provenance": provenance(params={k: str(v) for k, v in vars(args).items()})})
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
