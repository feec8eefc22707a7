"""Helpers of ``bench/gpu_session.sh``: size the training from the bench, gather a session, make its table.

    python bench/gpu_session.py plan --runs DIR --train-seconds S --train-limit N --max-epochs E --schemes max msd
    python bench/gpu_session.py collect --runs DIR --out OUTDIR [--params key=value ...]
    python bench/gpu_session.py table --session OUTDIR/session.json --out results/mnist_gpu_table.json

``plan`` prints one line ``<scheme> <epochs>`` per scheme and writes ``<runs>/plan.json`` (reused as it is
when present, so that a second call resumes the same runs).  Epochs of scheme k:

    E_k = floor(margin * (S - startup) / (c * T_k)),   1 <= E_k <= max_epochs,

with T_k the seconds per epoch of k measured alone by bench/train.py (per image, times the training
images), and c >= 1 the slowdown of running the schemes side by side on one device, measured by the
side-by-side bench (the larger of the schemes' ratios; 2, the fully serialised device, when not measured).

``collect`` gathers everything under ``--runs`` into ``<out>/session.json`` (device, nvidia-smi, stages,
bench, plan, training results, per-image evaluation matrices, provenance) and puts each model's weights
beside it (``<out>/<scheme>_model.pt``; the model of the checkpoint when a run stopped early).  Exit status
0 when every stage is complete, 75 when something is partial, 1 when nothing was evaluated.

``table`` turns a session.json into the table: clean, l_inf, l_1, l_2, union (AND over the three threats,
per image) +- its binomial standard error, average, training seconds and epochs, device, the evaluation's
attacks, and the published union accuracies beside it.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

THREATS = ("linf", "l1", "l2")
#: Exit status of collect when a stage is unfinished (the project's "unfinished, run again").
PARTIAL = 75
ROW = {"max": "max", "msd": "MSD"}
#: The fully serialised device: two processes at once each run at half speed.
SERIAL_CONTENTION = 2.0


def _read(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _tail(path: Path, n: int = 15) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return []


# ---------------------------------------------------------------------------------------------------- plan
def _bench_rows(path: Path) -> dict[str, dict]:
    data = _read(path) or {}
    return {r.get("key", r["scheme"]): r for r in data.get("rows", [])}


def plan(runs: Path, schemes, train_seconds: float, train_limit: int, max_epochs: int, margin: float,
         startup: float) -> dict:
    """The epochs of each scheme (see the module docstring) and how they were sized."""
    alone = _bench_rows(runs / "bench.json")
    pair = {s: _bench_rows(runs / f"bench_pair_{s}.json").get(s) for s in schemes}
    ratios = {s: pair[s]["seconds_per_batch"] / alone[s]["seconds_per_batch"]
              for s in schemes if pair.get(s) and s in alone}
    contention = max([1.0, *ratios.values()]) if ratios else SERIAL_CONTENTION
    usable = max(0.0, train_seconds - startup) * margin
    out = {"train_seconds": train_seconds, "startup_seconds": startup, "margin": margin, "train_limit": train_limit,
           "max_epochs": max_epochs, "contention": contention, "contention_ratios": ratios,
           "contention_source": "measured side by side" if ratios else "assumed (fully serialised device)",
           "schemes": {}}
    for s in schemes:
        if s in alone:
            per_image = alone[s]["seconds_per_epoch"] / 60_000
            epoch_s, source, c = per_image * train_limit * contention, "bench alone x contention", contention
        elif pair.get(s):
            epoch_s, source, c = pair[s]["seconds_per_epoch"] * train_limit / 60_000, "side-by-side bench", 1.0
        else:
            epoch_s, source = None, "not measured: 1 epoch, --time-limit decides"
        fit = math.floor(usable / epoch_s) if epoch_s else 1
        out["schemes"][s] = {"epochs": int(min(max_epochs, max(1, fit))), "epochs_that_fit": fit,
                             "planned_epoch_seconds": epoch_s, "source": source}
    return out


# ------------------------------------------------------------------------------------------------- collect
def _training(runs: Path, s: str, out: Path | None) -> dict:
    """The run's result (finished), or what its checkpoint says (stopped early); copies the weights."""
    folder = runs / f"train_{s}"
    res = _read(folder / "result.json")
    info: dict = {"log_tail": _tail(runs / f"train_{s}.log")}
    if res is not None:
        res.pop("step_losses", None)
        info.update(status="complete", result=res)
        if out is not None and (folder / "model.pt").is_file():
            shutil.copyfile(folder / "model.pt", out / f"{s}_model.pt")
            info["weights"] = f"{s}_model.pt"
        return info
    if not (folder / "checkpoint.pt").is_file():
        info["status"] = "missing"
        return info
    import torch

    ck = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)
    cfg = ck.get("config", {})
    info.update(status="partial", config=cfg, epochs_done=ck.get("epoch"), step_in_epoch=ck.get("step"),
                history=ck.get("history"), train_seconds=ck.get("train_seconds"))
    if out is not None:
        torch.save(ck["model"], out / f"{s}_model.pt")
        info["weights"] = f"{s}_model.pt (model of the checkpoint)"
    return info


def collect(runs: Path, out: Path, params: dict, budget: float | None, started: float | None) -> tuple[dict, int]:
    from simulate.provenance import provenance, write_json

    stages = []
    try:
        stages = [json.loads(line) for line in (runs / "stages.jsonl").read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        pass
    schemes = ("max", "msd")
    session = {
        "what": "MNIST 'max' and MSD on one device: bench of every scheme, training, evaluation (bench/gpu_session.sh)",
        "params": params, "budget_seconds": budget,
        "wall_seconds": None if started is None else time.time() - started,
        "device": _read(runs / "device.json"),
        "nvidia_smi": (runs / "nvidia_smi.txt").read_text(errors="replace") if (runs / "nvidia_smi.txt").exists()
        else None,
        "stages": stages,
        "bench": _read(runs / "bench.json"),
        "bench_side_by_side": {s: _read(runs / f"bench_pair_{s}.json") for s in schemes},
        "plan": _read(runs / "plan.json"),
        "train": {}, "eval": {},
    }
    strength = params.get("strength", "eval")
    for s in schemes:
        session["train"][s] = _training(runs, s, out)
        session["eval"][s] = {}
        # the evaluations of this strength, of the final model (or of the checkpoint of a run stopped early)
        kind = "model" if session["train"][s]["status"] == "complete" else "checkpoint"
        for t in THREATS:
            stem = runs / f"eval_{s}_{strength}_{kind}_{t}"
            ev = _read(stem.with_suffix(".json"))
            session["eval"][s][t] = ev if ev is not None else {"missing": True,
                                                               "log_tail": _tail(stem.with_suffix(".log"))}
    evaluated = [(s, t) for s in schemes for t in THREATS if "missing" not in session["eval"][s][t]]
    # complete: every artefact is there, whichever call made it (the stages of every call are kept, each
    # with the start time of its call; a resumed session may follow calls that ran out of time)
    complete = (len(evaluated) == len(schemes) * len(THREATS)
                and all(session["train"][s]["status"] == "complete" for s in schemes)
                and bool(session["bench"] and session["bench"].get("complete")))
    session["status"] = "complete" if complete else ("partial" if evaluated else "failed")
    session["provenance"] = provenance(params=params, seeds={"seed": params.get("seed")})
    write_json(out / "session.json", session)
    trained = ", ".join(f"{s} {session['train'][s]['status']}" for s in schemes)
    print(f"session {session['status']}: {len(evaluated)} of {len(schemes) * len(THREATS)} evaluations, "
          f"training {trained}; wrote {out / 'session.json'}")
    return session, 0 if complete else (PARTIAL if evaluated else 1)


# --------------------------------------------------------------------------------------------------- table
def _attacks_label(evals: dict) -> str:
    """The attacks of the evaluation: the attack log's names (empirical.evaluate), else those read off the
    recorded attack descriptions (APGD, APGDT, ...)."""
    found, strength = {}, None

    def key(name: str) -> str:
        return name.upper().replace("-", "").replace("APGDCE", "APGD")

    for ev in evals.values():
        params = ((ev or {}).get("provenance") or {}).get("params") or {}
        strength = params.get("strength", strength)
        for names in ((ev or {}).get("attack_log") or {}).get("attacks", {}).values():
            for name in names:
                found.setdefault(key(name), name)
        for text in (params.get("attacks") or {}).values():
            for name in re.findall(r"\b([A-Z][A-Za-z0-9]*)\((?:Linf|L1|L2)Ball", text):
                if name != "WorstOf":
                    found.setdefault(key(name), name)
    if not found:
        return "no evaluation"
    full = "FABT" in found or "SQUARE" in found
    return (f"strength {strength!r}: {' + '.join(found.values())}"
            + (" (AutoAttack's standard suite)" if full
               else " (the APGD pair: APGD-CE + APGD-T, not the full suite with FAB-T and Square)"))


def table_rows(session: dict) -> list[dict]:
    """One row per scheme: accuracies from the per-image matrices (robust = clean and robust, per threat)."""
    rows = []
    for s, evals in session["eval"].items():
        tr = session["train"][s]
        present = [t for t in THREATS if "missing" not in evals[t]]
        row = {"row": ROW.get(s, s), "scheme": s, "train_status": tr["status"], "threats_evaluated": present}
        if tr["status"] == "complete":
            res = tr["result"]
            row.update(train_seconds=res["train_seconds"], epochs=res["config"]["epochs"],
                       epochs_planned=res["config"]["epochs"], device=res["device"], amp=res.get("amp"))
        elif tr["status"] == "partial":
            cfg = tr["config"]
            steps_per_epoch = (cfg.get("train_limit") or 60_000) // cfg["batch_size"]
            row.update(train_seconds=tr["train_seconds"],
                       epochs=tr["epochs_done"] + tr["step_in_epoch"] / steps_per_epoch,
                       epochs_planned=cfg.get("epochs"), step_in_epoch=tr["step_in_epoch"])
        if not present:
            rows.append(row)
            continue
        clean = [evals[t]["clean_correct"] for t in present]
        if any(c != clean[0] for c in clean):
            raise ValueError(f"{s}: the evaluations disagree on which images are classified correctly")
        clean = clean[0]
        cols = {t: [bool(v[0]) and bool(c) for v, c in zip(evals[t]["robust_matrix"], clean)] for t in present}
        n = len(clean)
        per = {t: sum(col) / n for t, col in cols.items()}
        row.update(n_test=n, clean=sum(clean) / n, per_threat=per, average=sum(per.values()) / len(per),
                   first_broken_by={t: (evals[t].get("attack_log") or {}).get("broken_by_attack", {}).get(t)
                                    for t in present})
        if len(present) == len(THREATS):
            union = sum(all(col[i] for col in cols.values()) for i in range(n)) / n
            row.update(union=union, union_se=math.sqrt(union * (1 - union) / n))
        rows.append(row)
    return rows


def _format(rows, published) -> str:
    def f(x):
        return "  -  " if x is None else f"{x:.3f}"

    lines = [f"{'scheme':6s} {'clean':>6s} {'linf':>6s} {'l1':>6s} {'l2':>6s} {'union':>12s} {'avg':>6s} "
             f"{'epochs':>7s} {'train s':>8s}  published union"]
    for r in rows:
        pt = r.get("per_threat", {})
        union = f"{r['union']:.3f}±{r['union_se']:.3f}" if "union" in r else "     -      "
        pub = published.get(r["row"])
        ep = "-" if r.get("epochs") is None else (f"{r['epochs']}" if r["train_status"] == "complete"
                                                 else f"{r['epochs']:.2f}/{r.get('epochs_planned')}*")
        ts = r.get("train_seconds")
        lines.append(f"{r['row']:6s} {f(r.get('clean')):>6s} {f(pt.get('linf')):>6s} {f(pt.get('l1')):>6s} "
                     f"{f(pt.get('l2')):>6s} {union:>12s} {f(r.get('average')):>6s} {ep:>7s} "
                     f"{'-' if ts is None else f'{ts:.0f}':>8s}  "
                     + (f"{pub['union']:.3f} ({pub['source']})" if pub else "-"))
    if any(r["train_status"] != "complete" for r in rows):
        lines.append("* training stopped at a checkpoint before its planned epochs (or missing)")
    return "\n".join(lines)


def table(session: dict) -> dict:
    from empirical.reproduce import PUBLISHED

    rows = table_rows(session)
    published = PUBLISHED["mnist"]
    dev = session.get("device") or {}
    bench = session.get("bench") or {}
    attacks = _attacks_label({f"{s}_{t}": e for s, ev in session["eval"].items() for t, e in ev.items()
                              if "missing" not in e})
    prm = session.get("params") or {}
    text = (f"MNIST, l_inf 0.3 / l_1 10 / l_2 2, device {dev.get('cuda_device_name') or dev.get('requested_device')}, "
            f"evaluation {attacks}\n"
            f"training: {prm.get('model')}, {prm.get('train_limit')} images, batch {prm.get('batch_size')}, budgets "
            f"warmed up over {prm.get('eps_warmup')} of the steps; {prm.get('test_limit')} test images\n"
            + _format(rows, published)
            + (f"\n\ncost of each scheme on the same device (bench/train.py"
               f"{'' if bench.get('complete') else ', unfinished'}):\n{bench['table_text']}"
               if bench.get("table_text") else ""))
    return {
        "note": "MNIST 'max' and MSD trained on one device within one command (bench/gpu_session.sh); "
                f"session status {session.get('status')!r}. Published unions (empirical.reproduce.PUBLISHED), both "
                "measured before l_1-APGD existed: Tramer & Boneh 2019 about 50% for 'max' (their abstract: 'merely "
                "50%'); MSD 58.4% (Maini, Wong & Kolter 2020; issue 25 quotes 58.7%: the two were not re-checked "
                "against the paper's table here).",
        "device": dev, "evaluation_attacks": attacks, "rows": rows, "published_union": published,
        "bench_rows": bench.get("rows"), "bench_table_text": bench.get("table_text"),
        "bench_complete": bench.get("complete"), "plan": session.get("plan"), "stages": session.get("stages"),
        "session_status": session.get("status"), "session_params": session.get("params"),
        "session_provenance": session.get("provenance"), "table_text": text,
    }


# ---------------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    from simulate.core.cli import ArgumentParser  # one-line errors, whole flag names only

    p = ArgumentParser(prog="python bench/gpu_session.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("plan", help="epochs per scheme from the bench")
    a.add_argument("--runs", type=Path, required=True)
    a.add_argument("--train-seconds", type=float, required=True)
    a.add_argument("--train-limit", type=int, default=60_000)
    a.add_argument("--max-epochs", type=int, default=30)
    a.add_argument("--margin", type=float, default=0.85, help="fraction of the time planned [default: 0.85]")
    a.add_argument("--startup", type=float, default=20.0, help="seconds to start a training process [default: 20]")
    a.add_argument("--schemes", nargs="+", default=["max", "msd"])
    c = sub.add_parser("collect", help="gather a session folder into <out>/session.json")
    c.add_argument("--runs", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--budget", type=float, default=None)
    c.add_argument("--started", type=float, default=None)
    c.add_argument("--params", nargs="*", default=[], metavar="KEY=VALUE")
    t = sub.add_parser("table", help="the table of a session.json")
    t.add_argument("--session", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)

    if args.cmd == "plan":
        if args.train_limit < 1 or args.max_epochs < 1 or not 0 < args.margin <= 1:
            p.error("plan: --train-limit and --max-epochs must be >= 1, --margin in (0, 1]")
        path = args.runs / "plan.json"
        data = _read(path)
        if data is None:
            from simulate.provenance import write_json

            data = plan(args.runs, args.schemes, args.train_seconds, args.train_limit, args.max_epochs,
                        args.margin, args.startup)
            write_json(path, data)
        else:
            print(f"reusing {path} (the runs resume with its epochs)")
        print(f"contention {data['contention']:.2f} ({data['contention_source']})")
        for s, v in data["schemes"].items():
            print(f"# {s}: {v['source']}, {v['epochs_that_fit']} epoch(s) fit, planned epoch "
                  f"{'-' if v['planned_epoch_seconds'] is None else round(v['planned_epoch_seconds'], 1)} s")
        for s, v in data["schemes"].items():
            print(f"{s} {v['epochs']}")
        return 0
    if args.cmd == "collect":
        params = dict(kv.split("=", 1) for kv in args.params if "=" in kv)
        args.out.mkdir(parents=True, exist_ok=True)
        return collect(args.runs, args.out, params, args.budget, args.started)[1]
    from simulate.provenance import OutputError, check_output, provenance, write_json

    try:
        check_output(args.out, overwrite=args.overwrite, suffixes=(".json",))
    except OutputError as exc:
        p.error(str(exc))
    session = _read(args.session)
    if session is None or "eval" not in session:
        p.error(f"--session: {str(args.session)!r} is not a session.json of bench/gpu_session.sh")
    result = table(session)
    result["provenance"] = provenance(params={"session": str(args.session)})
    write_json(args.out, result)
    print(result["table_text"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
