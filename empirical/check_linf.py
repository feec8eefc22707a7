"""Real-model check of the attacks: a small MNIST CNN trained against l_inf, then the robust accuracy
that each attack leaves on the first 1,000 MNIST test images.

    python -m empirical.check_linf train --out runs/check_linf                      # resumable
    python -m empirical.check_linf eval --weights runs/check_linf/model.pt --out results/mnist_linf_check.json
    python -m empirical.check_linf sanity --weights runs/check_linf/model.pt --out results/mnist_linf_check.json

``train`` is ``empirical.train`` with the check's configuration (:func:`train_argv`): SmallMnistCNN,
single-threat l_inf adversarial training (PGD with ``--attack-steps`` steps, random start, the attack
module's step 2.5 eps / steps), Adam lr 1e-3, batch 100, constant learning rate, the budget warmed up
linearly over the first epoch (avoids the early collapse of adversarial training at eps = 0.3).  Its
checkpoints, resume, ``--time-limit`` (exit 75) and seeds are those of ``empirical.train``.

``eval`` runs every attack of :func:`check_attacks` through ``empirical.evaluate.robustness_matrix`` (one
column per attack) and passes when APGD finds at least as many adversarial examples as PGD (about 50 CPU minutes
on 1,000 images: its progress goes to ``OUT.part`` after every batch, and a run stopped by Ctrl-C, SIGTERM or
``--time-limit`` resumes when the same command is run again); ``sanity``
adds the gradient-masking self-checks for l_inf, l_2 and l_1 to the same result file.

Evidence (results/mnist_linf_check.json): one run, seed 0, CPU (one thread; 940 s of training for the 7 epochs of
``train --epochs 7``, 2,854 s of ``eval``), SmallMnistCNN, first 1,000 MNIST test images: clean 0.984; l_inf 0.3:
PGD-40 0.920, PGD-100 x 5 restarts 0.893, APGD-CE 0.886, APGD-margin 0.889, the full suite 0.878; l_2 2: PGD-100
0.816, APGD-CE 0.695, the full suite 0.059 (FAB-T breaks 545 examples that APGD-CE and APGD-T leave robust);
l_1 10: SLIDE 0.717, APGD-CE 0.316, the full suite 0.020; rotation-translation grid 0.001; union of the suites and
the grid 0.000.  Its gradients mislead the APGD pair at l_2 and l_1 (the self-checks of ``sanity`` say so: Square
alone breaks 106 and 10 of the pair's robust examples among the first 200), so only the full suite's numbers count.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .cli import ArgumentParser, add_common, claim_output, eps_type, number, path_type, ranged, state_ranges
from simulate.cli import command
from simulate.core.outputs import read_json

__all__ = ["train_argv", "check_attacks", "main"]


def train_argv(args) -> list[str]:
    """The ``empirical.train`` command line of the check's training."""
    argv = ["--dataset", "mnist", "--scheme", "adv", "--threats", "linf", "--model", "mnist_cnn_small",
            "--optimizer", "adam", "--lr", "1e-3", "--schedule", "constant", "--batch-size", "100",
            "--epochs", str(args.epochs), "--attack-steps", str(args.attack_steps),
            "--eps-warmup", repr(1.0 / args.epochs) if args.epochs > 1 else "0",
            "--seed", str(args.seed), "--device", args.device, "--out", str(args.out)]
    if args.eps:
        argv += ["--eps", f"linf={args.eps['linf']!r}"]
    for flag, value in (("--train-limit", args.train_limit), ("--time-limit", args.time_limit),
                        ("--threads", args.threads), ("--data-dir", args.data_dir)):
        if value is not None:
            argv += [flag, str(value)]
    return argv + (["--quiet"] if args.quiet else [])


def check_attacks(eps: dict | None = None) -> dict:
    """{name: (threat, attack)}: the attacks the check compares, at the MNIST budgets (or ``eps``)."""
    from .attacks import attack_for, get_attack
    from .threats import make_threats

    linf, l1, l2, rt = make_threats(("linf", "l1", "l2", "rt"), "mnist", eps)
    return {
        "linf/pgd-40": (linf, get_attack("pgd", linf, steps=40, step_size=0.01)),
        "linf/pgd-100x5": (linf, get_attack("pgd", linf, steps=100, step_size=0.01, restarts=5)),
        "linf/apgd-ce-100": (linf, get_attack("apgd", linf, steps=100, loss="ce")),
        "linf/apgd-margin-100": (linf, get_attack("apgd", linf, steps=100, loss="margin")),
        "l2/pgd-100": (l2, get_attack("pgd", l2, steps=100)),
        "l2/apgd-ce-100": (l2, get_attack("apgd", l2, steps=100)),
        "l1/slide-100": (l1, get_attack("slide", l1, steps=100)),
        "l1/apgd-ce-100": (l1, get_attack("apgd", l1, steps=100)),
        "rt/grid": (rt, get_attack("rt_grid", rt)),
        **{f"{t.name}/suite": (t, attack_for(t, "eval")) for t in (linf, l2, l1)},
    }


#: the columns whose union with the rotation-translation grid is the check's union accuracy
SUITE_COLUMNS = ("linf/suite", "l2/suite", "l1/suite")


def _model_and_data(p, args):
    from .checkpoint import CheckpointError
    from .data import DataError, load_mnist
    from .evaluate import load_model
    from .utils import get_device, set_threads

    try:
        model, name = load_model(args.weights, dataset="mnist")
    except CheckpointError as exc:
        p.error(f"--weights: {exc}")
    set_threads(args.threads)
    try:
        x, y = load_mnist(args.data_dir, "test", limit=args.test_limit)
    except DataError as exc:
        p.error(f"--data-dir: {exc}")
    device = get_device(args.device)
    return model.to(device), name, x, y, device


def _eval(p, args) -> int:
    import torch

    from simulate.provenance import provenance, write_json

    from simulate.core.cli import UNFINISHED

    from .evaluate import (TimeLimitReached, attack_log, clean_correct, format_table, progress_file, progress_params,
                           robustness_matrix_and_log)
    from .gradient_masking import gradient_masking_warnings
    from .utils import make_generator

    model, name, x, y, device = _model_and_data(p, args)
    attacks = check_attacks(args.eps)
    t0 = time.time()
    clean = clean_correct(model, x, y, args.batch_size, device)
    part = progress_file(args.out)
    params = progress_params(args.weights, x, y, device, seed=args.seed,
                             attacks={k: repr(a) for k, (_, a) in attacks.items()})
    try:
        M, first, names = robustness_matrix_and_log(model, x, y, [t for t, _ in attacks.values()],
                                                    batch_size=args.batch_size, generator=make_generator(args.seed),
                                                    device=device, attacks=[a for _, a in attacks.values()],
                                                    quiet=args.quiet, part=part, params=params,
                                                    time_limit=args.time_limit)
    except TimeLimitReached as exc:
        print(f"{p.prog}: {exc}", file=sys.stderr)
        return UNFINISHED
    robust = {k: M[:, j] for j, k in enumerate(attacks)}
    results = {k: {"robust_accuracy": float(robust[k].float().mean()), "attack": repr(a)}
               for k, (_, a) in attacks.items()}

    def adversarial(*names) -> int:
        return int((clean & ~torch.stack([robust[n] for n in names]).all(0)).sum())

    checks = {
        "apgd_vs_pgd_linf": {"pgd_40_adversarial": adversarial("linf/pgd-40"),
                             "pgd_100x5_adversarial": adversarial("linf/pgd-100x5"),
                             "apgd_ce_adversarial": adversarial("linf/apgd-ce-100"),
                             "apgd_ce_or_margin_adversarial": adversarial("linf/apgd-ce-100", "linf/apgd-margin-100")},
        "apgd_vs_slide_l1": {"slide_adversarial": adversarial("l1/slide-100"),
                             "apgd_adversarial": adversarial("l1/apgd-ce-100")},
    }
    c = checks["apgd_vs_pgd_linf"]
    checks["passed"] = bool(c["apgd_ce_adversarial"] >= c["pgd_40_adversarial"]
                            and c["apgd_ce_or_margin_adversarial"] >= c["pgd_100x5_adversarial"])
    linf = attacks["linf/pgd-40"][0]
    warnings = gradient_masking_warnings(model, x[:200].to(device), y[:200].to(device), linf,
                                         generator=make_generator(args.seed))

    def union(*names) -> float:
        return float((torch.stack([robust[k] for k in names]).all(0) & clean).float().mean())

    suite = [list(attacks).index(k) for k in SUITE_COLUMNS]
    out = {
        "clean_accuracy": float(clean.float().mean()), "attacks": results,
        "union_accuracy_suite_rt": union(*SUITE_COLUMNS, "rt/grid"),
        "union_accuracy_apgd_rt": union("linf/apgd-ce-100", "linf/apgd-margin-100", "l2/apgd-ce-100",
                                        "l1/apgd-ce-100", "rt/grid"),
        "checks": checks, "gradient_masking_warnings": warnings,
        "attack_log": attack_log(first[:, suite], [names[j] for j in suite], list(SUITE_COLUMNS)),
        "provenance": provenance(params={"n_test": len(x), "eps": {k: t.eps for k, (t, _) in attacks.items()},
                                         "model": name, "weights": str(args.weights)},
                                 seeds={"attack": args.seed}, device=str(device), seconds=time.time() - t0),
    }
    write_json(args.out, out)
    part.unlink(missing_ok=True)
    if not args.quiet:
        print(format_table(["clean"] + list(results), [out["clean_accuracy"]] +
                           [r["robust_accuracy"] for r in results.values()]))
        print(f"APGD >= PGD check passed: {checks['passed']}; warnings: {warnings or 'none'}")
    return 0


def _sanity(p, args) -> int:
    """Gradient-masking self-checks for l_inf, l_2 and l_1 on the first ``--test-limit`` test images,
    merged into the result file written by ``eval`` (key "gradient_masking_by_threat")."""
    from simulate.provenance import provenance, write_json

    from .gradient_masking import gradient_masking_warnings
    from .threats import make_threats
    from .utils import make_generator

    out = Path(args.out)
    data = {}
    if out.exists():
        try:
            data = read_json(out)
        except (OSError, ValueError):
            p.error(f"--out: {str(out)!r} exists but is not a JSON result file")
        if not isinstance(data, dict):
            p.error(f"--out: {str(out)!r} does not hold a JSON object")
    model, _, x, y, device = _model_and_data(p, args)
    found = {}
    for threat in make_threats(("linf", "l2", "l1"), "mnist", args.eps):
        found[threat.name] = gradient_masking_warnings(model, x.to(device), y.to(device), threat,
                                                       generator=make_generator(args.seed), emit=False)
        if not args.quiet:
            print(f"{threat.name}: {found[threat.name] or 'no warning'}")
    data["gradient_masking_by_threat"] = {
        "n_images": len(x), "warnings": found,
        "provenance": provenance(params={"n": len(x), "checks": "empirical.gradient_masking.gradient_masking_warnings"},
                                 seeds={"attack": args.seed}, device=str(device)),
    }
    write_json(out, data)
    return 0


def build_parser():
    p = ArgumentParser(prog="python -m empirical.check_linf",
                       description="Real-model check of the attacks: a small MNIST CNN trained against l_inf "
                                   "(train), the robust accuracy each attack leaves (eval), gradient-masking "
                                   "self-checks (sanity).")
    sub = p.add_subparsers(dest="command", required=True, metavar="{train,eval,sanity}")
    t = sub.add_parser("train", help="train the model (empirical.train; resumable, exit 75 under --time-limit)",
                       description="Train the check's model through empirical.train.")
    t.add_argument("--out", type=path_type, default=Path("runs/check_linf"), metavar="DIR",
                   help="the run's folder [default: runs/check_linf]")
    t.add_argument("--epochs", type=number(int, 1, 1000, why="at least one pass; 1,000 would not finish"),
                   default=6, metavar="N", help="[default: 6]")
    t.add_argument("--attack-steps", type=number(int, 1, 1000, why="PGD steps per batch; cost is linear"),
                   default=5, metavar="N", help="PGD steps of the training attack [default: 5]")
    t.add_argument("--train-limit", type=ranged("train_limit"), default=None, metavar="N",
                   help="train on the first N training images [default: all]")
    t.add_argument("--time-limit", type=ranged("time_limit"), default=None, metavar="SECONDS",
                   help="checkpoint and exit 75 after this many seconds; the same command resumes")
    for name, help_text in (("eval", "robust accuracy under every attack of the check"),
                            ("sanity", "gradient-masking self-checks, added to the --out file")):
        e = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        e.add_argument("--weights", type=path_type, default=Path("runs/check_linf/model.pt"), metavar="FILE",
                       help="the trained model [default: runs/check_linf/model.pt]")
        e.add_argument("--out", type=path_type, required=True, metavar="FILE",
                       help="JSON result file" + (" (sanity adds to it)" if name == "sanity" else ""))
        if name == "eval":
            e.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
            e.add_argument("--time-limit", type=ranged("time_limit"), default=None, metavar="SECONDS",
                           help="stop at the first batch boundary after this many seconds, progress in OUT.part, "
                                "exit 75; the same command resumes [default: none]")
        e.add_argument("--test-limit", type=ranged("test_limit"), default=1000 if name == "eval" else 200,
                       metavar="N", help=f"the first N test images [default: {1000 if name == 'eval' else 200}]")
        e.add_argument("--batch-size", type=ranged("batch_size"), default=250, metavar="N",
                       help="[default: 250]")
    for s in sub.choices.values():
        s.add_argument("--eps", type=eps_type, default={}, metavar="BUDGETS",
                       help="budgets, e.g. linf=0.3 (train: linf only) [default: MNIST's, linf=0.3,l1=10,l2=2]")
        add_common(s, threads_default=1)
    return state_ranges(p)


@command
def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    sp = p._subparsers._group_actions[0].choices[args.command]  # the sub-command's parser, for its errors
    claim_output(sp, "--out", args.out, folder=args.command == "train",
                 overwrite=getattr(args, "overwrite", args.command != "eval"))
    if args.command == "train":
        if set(args.eps) - {"linf"}:
            sp.error(f"--eps: train takes the linf budget only, got {sorted(args.eps)}")
        from .train import main as train_main

        return train_main(train_argv(args))
    return {"eval": _eval, "sanity": _sanity}[args.command](sp, args)


if __name__ == "__main__":
    raise SystemExit(main())
