"""Robust accuracy of one model under three evaluations, on the same test images: this project's evaluation
before the AutoAttack-standard rewrite ("old", run from an export of that commit), its evaluation now ("new",
``attack_for(threat, "eval")``), and the reference AutoAttack (APGD-CE + APGD-T, its standard settings per norm:
l_inf / l_2 one APGD-CE restart and 9 APGD-T targets; l_1 five APGD-CE restarts, 5 targets, use_largereps), run
from a fetched copy of fra31/auto-attack outside the repository (never vendored).

    # one suite per process (they can run side by side), then the table:
    python bench/eval_vs_autoattack.py run --suite new --model runs/adv_linf_3ep/model.pt --n 1000 --out runs/eva_new.json
    python bench/eval_vs_autoattack.py run --suite ref --ref /work/ref/auto-attack ... --out runs/eva_ref.json
    python bench/eval_vs_autoattack.py run --suite old --old-tree /work/ref/old ... --out runs/eva_old.json
    python bench/eval_vs_autoattack.py merge runs/eva_old.json runs/eva_new.json runs/eva_ref.json \\
        --out results/mnist_eval_vs_autoattack.json

Each suite records, per threat, the per-example robust flags (clean-correct AND still correct at the returned
point, every returned point checked to lie in ball ∩ box), the accuracy and the wall time of the attack.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THREATS = {"linf": 0.3, "l2": 2.0, "l1": 10.0}
AA_NORM = {"linf": "Linf", "l2": "L2", "l1": "L1"}


def _suite_attack(suite: str, name: str, eps: float, model, device, ref_path):
    """A callable (x, y) -> x_adv for the suite."""
    import torch

    if suite in ("new", "old"):
        from empirical.attacks import attack_for
        from empirical.threats import get_threat

        atk = attack_for(get_threat(name, eps=eps), "eval")
        gen = torch.Generator().manual_seed(0)
        return (lambda x, y: atk(model, x, y, generator=gen)), repr(atk)
    sys.path.insert(0, str(ref_path))
    from autoattack import AutoAttack

    aa = AutoAttack(model, norm=AA_NORM[name], eps=eps, version="custom", attacks_to_run=["apgd-ce", "apgd-t"],
                    device=str(device), seed=0, verbose=False)
    # The standard version's settings (autoattack.py, set_version('standard')) for these two attacks.
    aa.apgd.n_restarts, aa.apgd_targeted.n_restarts = 1, 1
    aa.apgd_targeted.n_target_classes = 9
    if name == "l1":
        aa.apgd.use_largereps = aa.apgd_targeted.use_largereps = True
        aa.apgd.n_restarts = 5
        aa.apgd_targeted.n_target_classes = 5
    desc = (f"AutoAttack apgd-ce (restarts {aa.apgd.n_restarts}, largereps {aa.apgd.use_largereps}) + apgd-t "
            f"(targets {aa.apgd_targeted.n_target_classes}), n_iter 100, seed 0")
    return (lambda x, y: aa.run_standard_evaluation(x, y, bs=len(x))), desc


def run(args) -> int:
    import torch

    from simulate.provenance import provenance, write_json  # this checkout's, whatever the suite

    if args.suite == "old":
        # The old tree's empirical package comes first: its attacks are the old evaluation.
        sys.path.insert(0, str(args.old_tree))
        for m in [k for k in sys.modules if k == "empirical" or k.startswith("empirical.")]:
            del sys.modules[m]
    import empirical

    from empirical.data import load_mnist
    from empirical.evaluate import load_model
    from empirical.threats import get_threat

    torch.set_num_threads(args.threads)
    model, arch = load_model(args.model, args.arch)
    model = model.float().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x, y = load_mnist(args.data_dir, "test", limit=args.n)
    with torch.no_grad():
        clean = torch.cat([model(x[i:i + 500]).argmax(1) == y[i:i + 500] for i in range(0, len(x), 500)])
    out = {"suite": args.suite, "empirical_file": empirical.__file__, "model": str(args.model), "arch": arch,
           "n": len(x), "clean": float(clean.float().mean()), "threads": args.threads, "threats": {}}
    names = args.threats.split(",")
    # taken once, before any attack runs: the git SHA of the code this process imported (a later commit in the
    # same checkout must not be recorded for it)
    prov = provenance(params=vars(args), seeds={"attack_generator": 0, "autoattack_seed": 0})
    for name in names:
        eps = THREATS[name]
        attack, desc = _suite_attack(args.suite, name, eps, model, "cpu", args.ref)
        threat = get_threat(name, eps=eps)
        t0 = time.process_time(), time.time()
        xa_all = []
        for i in range(0, len(x), args.batch_size):
            xb, yb = x[i:i + args.batch_size], y[i:i + args.batch_size]
            xa_all.append(attack(xb, yb).detach().float())
        cpu_s, wall_s = time.process_time() - t0[0], time.time() - t0[1]
        xa = torch.cat(xa_all)
        inside = threat.contains(xa, x, rtol=1e-4)
        with torch.no_grad():
            still = torch.cat([model(xa[i:i + 500]).argmax(1) == y[i:i + 500] for i in range(0, len(x), 500)])
        robust = clean & still
        out["threats"][name] = {"eps": eps, "attack": desc, "accuracy": float(robust.float().mean()),
                                "wall_seconds": wall_s, "cpu_seconds": cpu_s,
                                "all_points_in_set": bool(inside.all()), "n_outside": int((~inside).sum()),
                                "robust": robust.int().tolist()}
        print(f"{args.suite} {name} {eps:g}: accuracy {robust.float().mean():.3f}  wall {wall_s:.0f} s  "
              f"cpu {cpu_s:.0f} s  in set: {bool(inside.all())}", flush=True)
        # rewritten after every threat, so a long run leaves the finished threats behind
        out["provenance"] = prov
        write_json(args.out, out)
    return 0


def merge(args) -> int:
    """One table from run files (several per suite allowed, one threat each or more; n may differ per threat)."""
    from simulate.provenance import provenance, write_json

    per = {}  # (suite, threat) -> (run file dict, threat record)
    files = {}
    for p in args.files:
        d = json.loads(Path(p).read_text())
        files[p] = {k: v for k, v in d.items() if k != "threats"}
        for name, rec in d["threats"].items():
            per[(d["suite"], name)] = (d, rec)
    suites = [s for s in ("old", "new", "ref") if any(k[0] == s for k in per)]
    names = [n for n in THREATS if all((s, n) in per for s in suites)]
    rows = {}
    lines = [f"{'suite':6s} " + " ".join(f"{n + ' (n=' + str(per[(suites[0], n)][0]['n']) + ')':>16s} {'cpu s':>6s}"
                                         for n in names)]
    for s in suites:
        rows[s] = {n: {"accuracy": per[(s, n)][1]["accuracy"], "n": per[(s, n)][0]["n"],
                       "clean_on_these_images": per[(s, n)][0]["clean"],
                       "cpu_seconds": per[(s, n)][1]["cpu_seconds"], "wall_seconds": per[(s, n)][1]["wall_seconds"],
                       "attack": per[(s, n)][1]["attack"], "all_points_in_set": per[(s, n)][1]["all_points_in_set"],
                       "git_sha": per[(s, n)][0]["provenance"]["git_sha"]} for n in names}
        lines.append(f"{s:6s} " + " ".join(f"{per[(s, n)][1]['accuracy']:16.3f} {per[(s, n)][1]['cpu_seconds']:6.0f}"
                                          for n in names))
    checks = {}
    if "new" in suites and "ref" in suites:
        for n in names:
            a, b = per[("new", n)][1]["robust"], per[("ref", n)][1]["robust"]
            if len(a) != len(b):
                continue
            diff = 100 * (sum(a) - sum(b)) / len(a)
            nn, rr = per[("new", n)][1], per[("ref", n)][1]
            checks[n] = {"new_minus_ref_points": diff, "goal_met": diff <= 0.5,
                         "robust_new_broken_by_ref": sum(1 for u, v in zip(a, b) if u and not v),
                         "robust_ref_broken_by_new": sum(1 for u, v in zip(a, b) if v and not u),
                         # CPU seconds of the process: the fair cost on a shared machine (wall time is noise there)
                         "cpu_ratio_new_over_ref": nn["cpu_seconds"] / max(rr["cpu_seconds"], 1e-9),
                         "wall_ratio_new_over_ref": nn["wall_seconds"] / max(rr["wall_seconds"], 1e-9)}
    table = {"note": args.note, "rows": rows, "new_vs_ref": checks, "table_text": "\n".join(lines),
             "runs": {p: {**f, "threats": {n: {k: v for k, v in r.items()}
                                             for (s, n), (d, r) in per.items() if d["provenance"] == f["provenance"]}}
                      for p, f in files.items()},
             "provenance": provenance(params={"files": args.files})}
    write_json(args.out, table)
    print(table["table_text"])
    for n, c in checks.items():
        print(f"{n}: new - ref = {c['new_minus_ref_points']:+.1f} points (goal <= +0.5: {c['goal_met']}), "
              f"cpu new/ref {c['cpu_ratio_new_over_ref']:.2f}, wall new/ref {c['wall_ratio_new_over_ref']:.2f}")
    return 0


def main(argv=None) -> int:
    from simulate.cli import ArgumentParser  # one-line errors, whole flag names only

    p = ArgumentParser(prog="python bench/eval_vs_autoattack.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--suite", choices=("old", "new", "ref"), required=True)
    r.add_argument("--model", type=Path, required=True)
    r.add_argument("--arch", default=None)
    r.add_argument("--n", type=int, default=1000)
    r.add_argument("--batch-size", type=int, default=500)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--threats", default="l1,l2,linf", help="in this order (each is written when done)")
    r.add_argument("--data-dir", type=Path, default=Path("/work/shared/data"))
    r.add_argument("--ref", type=Path, default=Path("/work/ref/auto-attack"), help="fetched fra31/auto-attack")
    r.add_argument("--old-tree", type=Path, default=Path("/work/ref/old"), help="export of the old commit")
    r.add_argument("--out", type=Path, required=True)
    m = sub.add_parser("merge")
    m.add_argument("files", nargs="+")
    m.add_argument("--note", default="")
    m.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.command == "run":
        if args.n < 1 or args.threads < 1 or args.batch_size < 1:
            p.error("--n, --threads and --batch-size must be >= 1")
        bad = [t for t in args.threats.split(",") if t not in THREATS]
        if bad:
            p.error(f"--threats must be names from {list(THREATS)}, got {bad}")
        if args.suite == "ref" and not (args.ref / "autoattack" / "autopgd_base.py").is_file():
            p.error(f"--ref {args.ref} holds no fra31/auto-attack checkout (autoattack/autopgd_base.py)")
        if args.suite == "old" and not (args.old_tree / "empirical" / "attacks" / "apgd.py").is_file():
            p.error(f"--old-tree {args.old_tree} holds no empirical/attacks/apgd.py")
        return run(args)
    return merge(args)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
