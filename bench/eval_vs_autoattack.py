"""Robust accuracy of one model under several evaluations, on the same test images:

* ``new``: this project's evaluation, ``attack_for(threat, "eval")`` (AutoAttack's standard suite: APGD-CE,
  APGD-T, FAB-T, Square), with its per-example attack log and the CPU seconds of each attack; the row ``apgd``
  of the table (the cheaper level ``attack_for(threat, "apgd")``, APGD-CE + APGD-T) is the same run stopped
  after its first two attacks (the suite runs them first, on the same generator, so the result is identical);
* ``apgd``: the cheaper level run on its own;
* ``ref``: the reference AutoAttack ``version='standard'`` (APGD-CE, APGD-T, FAB-T, Square; its settings per
  norm), run from a fetched copy of fra31/auto-attack outside the repository (never vendored);
* ``ref_pair``: the reference's APGD-CE + APGD-T only, at the standard version's settings;
* ``old``: an export of an older commit of this project (``--old-tree``).

    # one suite per process (they can run side by side), then the table:
    python bench/eval_vs_autoattack.py run --suite new --model runs/adv_linf_1ep/model.pt --n 1000 --out runs/eva_new.json
    python bench/eval_vs_autoattack.py run --suite ref --ref /work/ref/auto-attack ... --out runs/eva_ref.json
    python bench/eval_vs_autoattack.py merge runs/eva_new.json runs/eva_ref.json --out results/mnist_eval_vs_autoattack.json

Each suite records, per threat, the per-example robust flags (clean-correct AND still correct at the returned
point, every returned point checked to lie in ball ∩ box), the accuracy and the CPU and wall time of the attack.
Neither ``run`` nor ``merge`` writes over an existing ``--out`` unless ``--overwrite`` is given.
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


def _suite_attack(suite: str, name: str, eps: float, model, device, ref_path, seed: int = 0):
    """A callable (x, y) -> x_adv for the suite."""
    import torch

    if suite in ("new", "old", "apgd"):
        from empirical.attacks import attack_for
        from empirical.threats import get_threat

        atk = attack_for(get_threat(name, eps=eps), "apgd" if suite == "apgd" else "eval")
        gen = torch.Generator().manual_seed(seed)
        if suite == "old":
            return (lambda x, y: atk(model, x, y, generator=gen)), repr(atk), None
        return (lambda x, y: atk.perturb_log(model, x, y, generator=gen)), repr(atk), atk
    sys.path.insert(0, str(ref_path))
    from autoattack import AutoAttack

    if suite == "ref":
        aa = AutoAttack(model, norm=AA_NORM[name], eps=eps, version="standard", device=str(device), seed=seed,
                        verbose=False)
        desc = f"AutoAttack version='standard' ({', '.join(aa.attacks_to_run)}), seed {seed}"
        return (lambda x, y: aa.run_standard_evaluation(x, y, bs=len(x))), desc, None

    aa = AutoAttack(model, norm=AA_NORM[name], eps=eps, version="custom", attacks_to_run=["apgd-ce", "apgd-t"],
                    device=str(device), seed=seed, verbose=False)
    # The standard version's settings (autoattack.py, set_version('standard')) for these two attacks.
    aa.apgd.n_restarts, aa.apgd_targeted.n_restarts = 1, 1
    aa.apgd_targeted.n_target_classes = 9
    if name == "l1":
        aa.apgd.use_largereps = aa.apgd_targeted.use_largereps = True
        aa.apgd.n_restarts = 5
        aa.apgd_targeted.n_target_classes = 5
    desc = (f"AutoAttack apgd-ce (restarts {aa.apgd.n_restarts}, largereps {aa.apgd.use_largereps}) + apgd-t "
            f"(targets {aa.apgd_targeted.n_target_classes}), n_iter 100, seed {seed}")
    return (lambda x, y: aa.run_standard_evaluation(x, y, bs=len(x))), desc, None


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
    from empirical.evaluate import attack_log, load_model
    from empirical.threats import get_threat

    torch.set_num_threads(args.threads)
    model, arch = load_model(args.model, args.arch)
    model = model.float().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x, y = load_mnist(args.data_dir, "test", limit=args.offset + args.n)
    x, y = x[args.offset:], y[args.offset:]
    with torch.no_grad():
        clean = torch.cat([model(x[i:i + 500]).argmax(1) == y[i:i + 500] for i in range(0, len(x), 500)])
    out = {"suite": args.suite, "empirical_file": empirical.__file__, "model": str(args.model), "arch": arch,
           "n": len(x), "offset": args.offset, "clean": float(clean.float().mean()),
           "clean_correct": clean.int().tolist(), "threads": args.threads, "threats": {}}
    names = args.threats.split(",")
    # taken once, before any attack runs: the git SHA of the code this process imported (a later commit in the
    # same checkout must not be recorded for it)
    prov = provenance(params=vars(args), seeds={"attack_generator": args.seed, "autoattack_seed": args.seed})
    for name in names:
        eps = THREATS[name]
        attack, desc, suite_obj = _suite_attack(args.suite, name, eps, model, "cpu", args.ref, args.seed)
        threat = get_threat(name, eps=eps)
        t0 = time.process_time(), time.time()
        xa_all, first_all = [], []
        overhead = [0.0, 0.0]  # CPU and wall seconds of writing the records, left out of the attack's

        def record(done: int) -> dict:
            """The threat's record over the first ``done`` images (``partial`` while done < n)."""
            c0, w0 = time.process_time(), time.time()
            xa = torch.cat(xa_all)
            inside = threat.contains(xa, x[:done], rtol=1e-4)
            with torch.no_grad():
                still = torch.cat([model(xa[i:i + 500]).argmax(1) == y[i:min(i + 500, done)]
                                   for i in range(0, done, 500)])
            robust = clean[:done] & still
            rec = {"eps": eps, "attack": desc, "accuracy": float(robust.float().mean()),
                   "wall_seconds": w0 - t0[1] - overhead[1], "cpu_seconds": c0 - t0[0] - overhead[0],
                   "all_points_in_set": bool(inside.all()), "n_outside": int((~inside).sum()),
                   "robust": robust.int().tolist()}
            if done < len(x):
                rec.update({"partial": True, "n_done": done})
            if suite_obj is not None:
                log = attack_log(torch.cat(first_all)[:, None], [suite_obj.names()], [name])
                rec.update({"attacks": log["attacks"][name], "first_broken_by": log["first_broken_by"][name],
                            "broken_by_attack": log["broken_by_attack"][name],
                            "cpu_seconds_per_attack": dict(zip(suite_obj.names(), suite_obj.cpu_seconds))})
            overhead[0] += time.process_time() - c0
            overhead[1] += time.time() - w0
            return rec

        for i in range(0, len(x), args.batch_size):
            xb, yb = x[i:i + args.batch_size], y[i:i + args.batch_size]
            res = attack(xb, yb)
            if isinstance(res, tuple):
                res, fb = res
                first_all.append(fb)
            xa_all.append(res.detach().float())
            done = i + len(xb)
            if done < len(x):
                # a partial record after every batch: a run stopped early leaves its finished images behind
                # (`merge --include-partial` reads it as a run over those images)
                out["threats"][name] = record(done)
                out["provenance"] = prov
                write_json(args.out, out)
        out["threats"][name] = rec = record(len(x))
        cpu_s, wall_s, robust, inside_all = rec["cpu_seconds"], rec["wall_seconds"], torch.tensor(rec["robust"]), \
            rec["all_points_in_set"]
        print(f"{args.suite} {name} {eps:g}: accuracy {robust.float().mean():.3f}  wall {wall_s:.0f} s  "
              f"cpu {cpu_s:.0f} s  in set: {inside_all}", flush=True)
        # rewritten after every threat, so a long run leaves the finished threats behind
        out["provenance"] = prov
        write_json(args.out, out)
    return 0


def _rows_of(d: dict, name: str, rec: dict) -> dict:
    """{row: record} of one run file's threat: the suite itself, and for ``new`` also its APGD-pair prefix."""
    seed = d["provenance"]["params"].get("seed", 0)
    base = {"n": d["n"], "offset": d.get("offset", 0), "clean_on_these_images": d["clean"], "seed": seed,
            **({"pooled_from": d["pooled_from"]} if "pooled_from" in d else {}),
            "git_sha": d["provenance"]["git_sha"], "all_points_in_set": rec["all_points_in_set"]}
    out = {d["suite"]: {**base, "accuracy": rec["accuracy"], "cpu_seconds": rec["cpu_seconds"],
                        "wall_seconds": rec["wall_seconds"], "attack": rec["attack"], "robust": rec["robust"],
                        **({"broken_by_attack": rec["broken_by_attack"], "first_broken_by": rec["first_broken_by"]}
                           if "broken_by_attack" in rec else {})}}
    if d["suite"] == "new" and "first_broken_by" in rec:
        robust = [int(v not in ("clean_wrong", "apgd-ce", "apgd-t")) for v in rec["first_broken_by"]]
        per = rec["cpu_seconds_per_attack"]
        out["apgd (prefix of new)"] = {**base, "accuracy": sum(robust) / len(robust), "robust": robust,
                                       "cpu_seconds": per["apgd-ce"] + per["apgd-t"], "wall_seconds": None,
                                       "attack": "the first two attacks of the new suite (APGD-CE + APGD-T)"}
    return out


def _pooled(runs):
    """[(run, record)]: runs of one suite, seed, model and threat on consecutive image ranges (offsets 0..n, n..m,
    ...) as one run over all their images (robust flags and logs concatenated, CPU seconds summed); other runs
    as they are."""
    offsets = [o for o, *_ in runs]
    consecutive = len(runs) > 1 and all(o + d["n"] == runs[i + 1][0] for i, (o, _, d, _) in enumerate(runs[:-1]))
    if not consecutive or len(set(offsets)) < len(offsets):
        return [(d, rec) for _, _, d, rec in runs]
    ds, recs = [d for _, _, d, _ in runs], [rec for *_, rec in runs]
    n = sum(d["n"] for d in ds)
    robust = [v for rec in recs for v in rec["robust"]]
    shas = sorted({d["provenance"]["git_sha"] for d in ds})
    clean = None if any(d["clean"] is None for d in ds) else sum(d["clean"] * d["n"] for d in ds) / n
    d = {**ds[0], "n": n, "offset": offsets[0], "clean": clean,
         "provenance": {**ds[0]["provenance"], "git_sha": " + ".join(shas)},
         "pooled_from": [{"file": f, "offset": o, "n": dd["n"],
                          **({"stopped_early_of": dd["n_planned"]} if "n_planned" in dd else {})}
                         for o, f, dd, _ in runs]}
    rec = {**recs[0], "robust": robust, "accuracy": sum(robust) / n,
           "cpu_seconds": sum(r["cpu_seconds"] for r in recs), "wall_seconds": sum(r["wall_seconds"] for r in recs),
           "all_points_in_set": all(r["all_points_in_set"] for r in recs)}
    if all("first_broken_by" in r for r in recs):
        rec["first_broken_by"] = [v for r in recs for v in r["first_broken_by"]]
        rec["broken_by_attack"] = {a: sum(r["broken_by_attack"][a] for r in recs) for a in recs[0]["broken_by_attack"]}
        rec["cpu_seconds_per_attack"] = {a: sum(r["cpu_seconds_per_attack"][a] for r in recs)
                                         for a in recs[0]["cpu_seconds_per_attack"]}
    return [(d, rec)]


def merge(args) -> int:
    """One table from run files (several per suite and seed allowed, one threat each or more)."""
    import math

    from simulate.provenance import provenance, write_json

    cells = {}  # (row, threat) -> [records over seeds]
    files = {}
    groups = {}  # (suite, seed, model, threat) -> [(offset, file, run, record)]
    for p in args.files:
        d = json.loads(Path(p).read_text())
        files[p] = {k: v for k, v in d.items() if k not in ("threats", "clean_correct")}
        for name, rec in d["threats"].items():
            if args.threats and name not in args.threats.split(","):
                continue
            if rec.get("partial"):
                if not args.include_partial:
                    print(f"{p}: {name} is partial ({rec['n_done']} of {d['n']} images): left out")
                    continue
                # the file's clean accuracy is over all its planned images; over the finished ones it is known
                # only from the per-example flags (files written before they were recorded: None)
                cc = d.get("clean_correct")
                d = {**d, "n": rec["n_done"], "n_planned": d["n"],
                     "clean": sum(cc[:rec["n_done"]]) / rec["n_done"] if cc else None}
            key = (d["suite"], d["provenance"]["params"].get("seed", 0), d["model"], name)
            groups.setdefault(key, []).append((d.get("offset", 0), p, d, rec))
    for (_, _, _, name), runs in groups.items():
        for d, rec in _pooled(sorted(runs, key=lambda t: t[0])):
            for row, r in _rows_of(d, name, rec).items():
                cells.setdefault((row, name), []).append(r)
    order = ["old", "apgd (prefix of new)", "apgd", "new", "ref_pair", "ref"]
    rows = [r for r in order if any(k[0] == r for k in cells)]
    names = [n for n in THREATS if any(k[1] == n for k in cells)]
    table, lines = {}, []
    lines.append(f"{'row':22s} " + " ".join(f"{n:>28s}" for n in names))
    for r in rows:
        table[r] = {}
        parts = []
        for n in names:
            recs = cells.get((r, n))
            if not recs:
                parts.append(f"{'-':>28s}")
                continue
            accs = [c["accuracy"] for c in recs]
            m = sum(accs) / len(accs)
            nn = recs[0]["n"]
            se = math.sqrt(max(m * (1 - m), 1e-12) / nn)
            cpu = sum(c["cpu_seconds"] for c in recs) / len(recs)
            table[r][n] = {"accuracy_mean": m, "accuracy_per_seed": {str(c["seed"]): c["accuracy"] for c in recs},
                           "spread": max(accs) - min(accs), "standard_error": se, "n": nn,
                           "first_image": recs[0]["offset"],
                           **({"pooled_from": recs[0]["pooled_from"]} if "pooled_from" in recs[0] else {}),
                           "clean_on_these_images": recs[0]["clean_on_these_images"], "cpu_seconds_mean": cpu,
                           "cpu_seconds_per_seed": {str(c["seed"]): c["cpu_seconds"] for c in recs},
                           "attack": recs[0]["attack"], "all_points_in_set": all(c["all_points_in_set"] for c in recs),
                           "git_sha": sorted({c["git_sha"] for c in recs}),
                           **({"broken_by_attack": {str(c["seed"]): c["broken_by_attack"] for c in recs}}
                              if "broken_by_attack" in recs[0] else {})}
            parts.append(f"{100 * m:6.1f}% ±{100 * se:4.1f} ({len(recs)} seed{'s' if len(recs) > 1 else ''}) "
                         f"{cpu:5.0f} s")
        lines.append(f"{r:22s} " + " ".join(parts))
    checks = {}
    for n in names:
        b, c = cells.get(("new", n)), cells.get(("ref", n))
        if not b or not c:
            continue
        mb = sum(x["accuracy"] for x in b) / len(b)
        mc = sum(x["accuracy"] for x in c) / len(c)
        cb = sum(x["cpu_seconds"] for x in b) / len(b)
        cc = sum(x["cpu_seconds"] for x in c) / len(c)
        same = [(x, y) for x in b for y in c if x["seed"] == y["seed"] and len(x["robust"]) == len(y["robust"])]
        checks[n] = {"new_minus_ref_points": 100 * (mb - mc), "goal_met": 100 * (mb - mc) <= 0.5,
                     "cpu_ratio_new_over_ref": cb / max(cc, 1e-9),
                     "robust_new_broken_by_ref": {str(x["seed"]): sum(1 for u, v in zip(x["robust"], y["robust"])
                                                                       if u and not v) for x, y in same},
                     "robust_ref_broken_by_new": {str(x["seed"]): sum(1 for u, v in zip(x["robust"], y["robust"])
                                                                       if v and not u) for x, y in same}}
    # the per-example records: robust flags of every row, and the suite's log of which attack broke what first
    per_example = {f"{r}/seed{c['seed']}/{n}": {"example_index": list(range(c["offset"], c["offset"] + c["n"])),
                                                 "robust": c["robust"],
                                                 **({"first_broken_by": c["first_broken_by"]}
                                                    if "first_broken_by" in c else {})}
                   for (r, n), recs in cells.items() for c in recs}
    out = {"note": args.note, "rows": table, "new_vs_ref": checks, "table_text": "\n".join(lines),
           "per_example": per_example,
           "runs": {p: f for p, f in files.items()}, "provenance": provenance(params={"files": args.files})}
    write_json(args.out, out)
    print(out["table_text"])
    for n, c in checks.items():
        print(f"{n}: new - ref = {c['new_minus_ref_points']:+.1f} points (goal <= +0.5: {c['goal_met']}), "
              f"cpu new/ref {c['cpu_ratio_new_over_ref']:.2f}")
    return 0


def main(argv=None) -> int:
    from simulate.core.cli import ArgumentParser  # one-line errors, whole flag names only

    p = ArgumentParser(prog="python bench/eval_vs_autoattack.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--suite", choices=("old", "apgd", "new", "ref", "ref_pair"), required=True)
    r.add_argument("--seed", type=int, default=0, help="attack seed (our generator and AutoAttack's seed)")
    r.add_argument("--model", type=Path, required=True)
    r.add_argument("--arch", default=None)
    r.add_argument("--n", type=int, default=1000)
    r.add_argument("--offset", type=int, default=0, help="first test image (merge pools runs of consecutive images)")
    r.add_argument("--batch-size", type=int, default=500)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--threats", default="l1,l2,linf", help="in this order (each is written when done)")
    r.add_argument("--data-dir", type=Path, default=Path("/work/shared/data"))
    r.add_argument("--ref", type=Path, default=Path("/work/ref/auto-attack"), help="fetched fra31/auto-attack")
    r.add_argument("--old-tree", type=Path, default=Path("/work/ref/old"), help="export of the old commit")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    m = sub.add_parser("merge")
    m.add_argument("files", nargs="+")
    m.add_argument("--note", default="")
    m.add_argument("--threats", default=None, help="only these threats (comma-separated) [default: all]")
    m.add_argument("--include-partial", action="store_true",
                   help="read a run stopped early as a run over the images it finished")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = p.parse_args(argv)
    if args.out.exists() and not args.overwrite:
        p.error(f"--out {args.out} exists; pass --overwrite to replace it")
    if args.command == "run":
        if args.n < 1 or args.threads < 1 or args.batch_size < 1:
            p.error("--n, --threads and --batch-size must be >= 1")
        if not 0 <= args.offset < 10000:
            p.error(f"--offset must be in [0, 10000), got {args.offset}")
        bad = [t for t in args.threats.split(",") if t not in THREATS]
        if bad:
            p.error(f"--threats must be names from {list(THREATS)}, got {bad}")
        if args.suite in ("ref", "ref_pair") and not (args.ref / "autoattack" / "autopgd_base.py").is_file():
            p.error(f"--ref {args.ref} holds no fra31/auto-attack checkout (autoattack/autopgd_base.py)")
        if args.suite == "old" and not (args.old_tree / "empirical" / "attacks" / "apgd.py").is_file():
            p.error(f"--old-tree {args.old_tree} holds no empirical/attacks/apgd.py")
        return run(args)
    return merge(args)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
