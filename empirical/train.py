"""Train a classifier with one of the training schemes, resumably, on one or several processes.

    python -m empirical.train --dataset mnist --scheme max --threats linf,l1,l2 --out runs/mnist_max
    torchrun --standalone --nproc_per_node 2 -m empirical.train --dataset mnist --scheme msd ...

One loop serves every scheme (``empirical/schemes.py``): per step it draws the global batch, takes this
process's slice, asks the scheme for the loss of the batch, and takes an optimiser step.  The loop owns

* optimisation: SGD (momentum, weight decay) or Adam; the learning rate follows ``--schedule`` per step:
  ``cyclic`` (triangular one-cycle: linear from 0 up to ``--lr`` at 40% of the run, then linearly down to
  0, the short schedule of Wong et al. 2020 and Maini et al. 2020), ``piecewise`` (``--lr``, then x0.1
  after 50% and x0.01 after 75% of the run, Madry et al. style) or ``constant``;
* mixed precision: ``torch.autocast`` in bfloat16 on CUDA (``--amp auto``: on when the device is CUDA;
  never on CPU);
* checkpoints (``<out>/checkpoint.pt``) at the end of every epoch and every ``--checkpoint-every`` steps,
  written atomically, and exact resume (``--resume``, the default): model, optimiser, scheduler, scheme
  state, RNG states (global and the attack generator of every process), epoch and step;
* deterministic seeding: the model is initialised from ``--seed``, each epoch's order is a permutation
  drawn from (seed, epoch) alone, the attacks' random starts come from a generator seeded by
  (seed, rank);
* results: ``<out>/model.pt`` (state dict of the final model) and ``<out>/result.json`` (configuration,
  provenance, per-epoch history, training time, and, with ``--eval-limit`` > 0, clean / per-threat /
  union / average accuracy on the first test images under the evaluation module's strongest attacks).

Defaults per dataset (``PRESETS``; every flag overrides them): MNIST - MnistCNN, Adam, peak lr 1e-3,
cyclic, batch 100, 10 epochs; CIFAR-10 - PreAct ResNet-18, SGD momentum 0.9, weight decay 5e-4, peak lr
0.1, cyclic, batch 128, 30 epochs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["TrainConfig", "PRESETS", "train", "build_parser", "config_from_args", "main", "INTERRUPTED"]

#: Exit status of a run stopped by ``--stop-after-steps`` (checkpoint written, resume to finish).
INTERRUPTED = 75

PRESETS: dict[str, dict[str, Any]] = {
    "mnist": dict(model="mnist_cnn", optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="cyclic",
                  batch_size=100, epochs=10),
    "fashion_mnist": dict(model="mnist_cnn", optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="cyclic",
                          batch_size=100, epochs=10),
    "cifar10": dict(model="preact_resnet18", optimizer="sgd", lr=0.1, weight_decay=5e-4, schedule="cyclic",
                    batch_size=128, epochs=30),
}
PRESETS["cifar10_jpeg"] = PRESETS["cifar10"]

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cyclic", "piecewise", "constant")
AMP = ("auto", "on", "off")
AUGMENT = ("auto", "crop_flip", "none")
THREAT_NAMES = ("linf", "l1", "l2", "rt")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that decides a training run (``None``: the dataset's preset, see ``PRESETS``)."""

    dataset: str = "mnist"
    scheme: str = "natural"
    threats: tuple[str, ...] = ()
    eps_linf: float | None = None
    eps_l1: float | None = None
    eps_l2: float | None = None
    model: str | None = None
    optimizer: str | None = None
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    schedule: str | None = None
    batch_size: int | None = None
    epochs: int | None = None
    train_limit: int | None = None
    attack_steps: int | None = None
    seed: int = 0
    amp: str = "auto"
    eval_limit: int = 0
    eval_threats: tuple[str, ...] | None = None
    eval_batch_size: int = 200
    augment: str = "auto"
    eps_warmup: float = 0.0

    def __post_init__(self) -> None:
        from .data import DATASETS
        from .models import MODELS
        from .schemes import scheme_names

        if self.dataset not in DATASETS or self.dataset == "mnist37":
            allowed = [d for d in DATASETS if d != "mnist37"]
            raise ValueError(f"dataset must be one of {allowed}, got {self.dataset!r}")
        if self.scheme not in scheme_names():
            raise ValueError(f"scheme must be one of {scheme_names()}, got {self.scheme!r}")
        for name in ("threats", "eval_threats"):
            value = getattr(self, name)
            if value is None:
                continue
            value = tuple(value)
            object.__setattr__(self, name, value)
            bad = [t for t in value if t not in THREAT_NAMES]
            if bad:
                raise ValueError(f"{name} must be names from {THREAT_NAMES}, got {bad}")
            if len(set(value)) != len(value):
                raise ValueError(f"{name} has a repeated threat: {value}")
        from .schemes import SCHEMES

        lo, hi = SCHEMES[self.scheme].n_threats
        k = len(self.threats)
        if k < lo or (hi is not None and k > hi):
            want = f"exactly {lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            raise ValueError(f"scheme {self.scheme!r} needs {want} threat(s) in threats, got {k}")
        preset = PRESETS[self.dataset]
        for key, value in preset.items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.augment not in AUGMENT:
            raise ValueError(f"augment must be one of {AUGMENT}, got {self.augment!r}")
        if self.amp not in AMP:
            raise ValueError(f"amp must be one of {AMP}, got {self.amp!r}")
        for name in ("lr",):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be finite and > 0, got {v}")
        for name in ("momentum", "weight_decay"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {v}")
        for name in ("eps_linf", "eps_l1", "eps_l2"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be finite and > 0, got {v}")
        for name in ("batch_size", "epochs", "eval_batch_size"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        for name in ("train_limit", "attack_steps"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and v >= 1):
                raise ValueError(f"{name} must be an integer >= 1 (or omitted), got {v!r}")
        if not (isinstance(self.eps_warmup, (int, float)) and 0 <= self.eps_warmup < 1):
            raise ValueError(f"eps_warmup must be a fraction in [0, 1), got {self.eps_warmup!r}")
        if not (isinstance(self.eval_limit, int) and self.eval_limit >= 0):
            raise ValueError(f"eval_limit must be an integer >= 0, got {self.eval_limit!r}")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def budgets(self) -> dict[str, float | None]:
        return {"linf": self.eps_linf, "l1": self.eps_l1, "l2": self.eps_l2, "rt": None}

    @property
    def threat_dataset(self) -> str:
        return "cifar10" if self.dataset.startswith("cifar10") else "mnist"


FIELD_HELP = {
    "dataset": "data set: mnist, fashion_mnist, cifar10 (lossless subset), cifar10_jpeg (full, JPEG)",
    "scheme": "training scheme: natural, adv, avg, max, msd, sat, mng_ac",
    "threats": "comma-separated threats of the scheme: linf,l1,l2,rt (adv: exactly one)",
    "eps_linf": "l_inf budget (default: the dataset's, MNIST 0.3, CIFAR-10 8/255)",
    "eps_l1": "l_1 budget (default: MNIST 10, CIFAR-10 12)",
    "eps_l2": "l_2 budget (default: MNIST 2, CIFAR-10 0.5)",
    "model": "network: mnist_cnn, preact_resnet18",
    "optimizer": "sgd (momentum, weight decay) or adam",
    "lr": "peak learning rate (> 0)",
    "momentum": "SGD momentum (>= 0)",
    "weight_decay": "weight decay (>= 0)",
    "schedule": "learning-rate schedule per step: cyclic, piecewise, constant",
    "batch_size": "global batch size (split evenly over the processes)",
    "epochs": "number of epochs (>= 1)",
    "train_limit": "train on the first N training images only",
    "attack_steps": "steps of the training attacks (default: the attack module's training default)",
    "seed": "random seed (>= 0); same seed, same run",
    "amp": "mixed precision: auto (bfloat16 autocast on CUDA only), on (needs CUDA), off",
    "eval_limit": "evaluate on the first N test images at the end (0: no evaluation)",
    "eval_threats": "threats of the final evaluation (default: the training threats, or linf,l1,l2)",
    "eval_batch_size": "batch size of the final evaluation",
    "augment": "data augmentation: auto (random crop with 4-pixel padding + horizontal flip on CIFAR-10, "
               "none on MNIST), crop_flip, none",
    "eps_warmup": "fraction of the run over which the training budgets grow linearly from 0 to their value "
                  "(0: none); a common remedy when adversarial training stalls at the uniform prediction",
}


def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m empirical.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in fields(TrainConfig):  # flags generated from the configuration's fields
        flag = "--" + f.name.replace("_", "-")
        kind = str(f.type)
        if "tuple" in kind:
            conv = _csv
        elif "int" in kind:
            conv = int
        elif "float" in kind:
            conv = float
        else:
            conv = str
        p.add_argument(flag, dest=f.name, type=conv, default=f.default, help=FIELD_HELP[f.name])
    p.add_argument("--out", type=Path, required=True, help="output folder (checkpoint, model, result.json)")
    p.add_argument("--data-dir", type=Path, default=None, help="data folder (default $ADVTRAIN_DATA_DIR)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="start afresh even if <out>/checkpoint.pt exists")
    p.add_argument("--checkpoint-every", type=int, default=0, help="also checkpoint every K steps (0: epochs only)")
    p.add_argument("--stop-after-steps", type=int, default=None,
                   help="simulate an interruption: checkpoint and exit with status 75 after K steps of this process")
    p.add_argument("--stop-after-seconds", type=float, default=None,
                   help="wall-clock budget of this call: checkpoint and exit with status 75 at the first step "
                        "boundary after it (rerun to resume)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--evaluate-only", action="store_true",
                   help="evaluate the finished run in --out (model.pt) with --eval-limit/--eval-threats; "
                        "writes <out>/eval.json")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})


# ------------------------------------------------------------------------------------------------------
def lr_factor(schedule: str, step: int, total: int) -> float:
    """Multiplier of the peak learning rate at optimiser step ``step`` (0-based) of ``total``."""
    t = (step + 1) / total
    if schedule == "cyclic":
        return t / 0.4 if t <= 0.4 else max(0.0, (1.0 - t) / 0.6)
    if schedule == "piecewise":
        return 1.0 if t <= 0.5 else (0.1 if t <= 0.75 else 0.01)
    return 1.0


def _threat_objects(names, cfg: TrainConfig):
    if not names:
        return []
    from .threats import get_threat

    budgets = cfg.budgets()
    return [get_threat(n, dataset=cfg.threat_dataset, eps=budgets[n]) for n in names]


def _load_data(cfg: TrainConfig, data_dir, split: str, limit):
    from .data import load_dataset

    return load_dataset(cfg.dataset, data_dir, split, limit)


def crop_flip(x, generator, pad: int = 4):
    """Random crop after zero padding by ``pad`` pixels and random horizontal flip (CIFAR-10 standard)."""
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    xp = F.pad(x, (pad, pad, pad, pad))
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None]  # [n, 1, h, 1]
    cols = (dx[:, None] + torch.arange(w)[None, :])
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]  # [n, 1, 1, w]
    idx_n = torch.arange(n)[:, None, None, None]
    idx_c = torch.arange(x.shape[1])[None, :, None, None]
    return xp[idx_n, idx_c, rows, cols]


def _history_summary(step_losses):
    return float(sum(step_losses) / max(1, len(step_losses)))


def train(cfg: TrainConfig, out: str | Path, *, data_dir=None, device: str | None = None, resume: bool = True,
          quiet: bool = False, checkpoint_every: int = 0, stop_after_steps: int | None = None,
          stop_after_seconds: float | None = None) -> dict[str, Any] | None:
    """Run (or resume) the training of ``cfg`` into folder ``out``; the result dict, or None if stopped.

    ``stop_after_steps`` / ``stop_after_seconds``: checkpoint and return None after that many steps / that
    much wall time of this call (checked at step boundaries), so that a run under a per-command time limit
    (a lent GPU machine: 10 minutes a command) ends cleanly and the next call resumes it exactly.

    Launched by torchrun, every process calls this; only rank 0 writes files and returns the result
    (the other ranks return None).
    """
    import torch
    from tqdm.auto import tqdm

    from simulate.provenance import provenance, write_json

    from . import distributed as D
    from .checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state
    from .models import get_model
    from .schemes import get_scheme, unwrap

    out = Path(out)
    ctx = D.init(device)
    dev = ctx.device
    use_amp = cfg.amp == "on" or (cfg.amp == "auto" and dev.type == "cuda")
    if use_amp and dev.type != "cuda":
        raise ValueError("amp 'on' needs a CUDA device")

    x_train, y_train = _load_data(cfg, data_dir, "train", cfg.train_limit)
    n = x_train.shape[0]
    B = cfg.batch_size
    if B % ctx.world_size:
        raise ValueError(f"batch_size {B} must be divisible by the number of processes {ctx.world_size}")
    spe = n // B  # steps per epoch; the last incomplete batch is dropped so that shards stay equal
    if spe < 1:
        raise ValueError(f"batch_size {B} exceeds the {n} training images")
    total = spe * cfg.epochs
    augment = cfg.augment == "crop_flip" or (cfg.augment == "auto" and cfg.dataset.startswith("cifar10"))

    torch.manual_seed(cfg.seed)
    model = get_model(cfg.model).to(dev)
    ddp = D.wrap(model, ctx)
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg.schedule, s, total))
    overrides = {} if cfg.attack_steps is None else {"steps": cfg.attack_steps}
    scheme = get_scheme(cfg.scheme, _threat_objects(cfg.threats, cfg), attack_overrides=overrides,
                        seed=cfg.seed).to(dev)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + ctx.rank)  # CPU: same draws on any device

    state = {"epoch": 0, "step": 0, "history": [], "step_losses": [], "train_seconds": 0.0}
    ckpt_path = out / "checkpoint.pt"
    cfg_dict = dataclasses.asdict(cfg)
    if resume and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path, map_location=dev)
        if ck.get("config") != cfg_dict or ck.get("world_size") != ctx.world_size:
            raise CheckpointError(f"{ckpt_path} belongs to another configuration or number of processes; "
                                  "use another --out or --no-resume")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        scheme.load_state_dict(ck["scheme"])
        set_rng_state(ck["rng"][ctx.rank], {"attack": gen})
        state = {k: ck[k] for k in state}

    def checkpoint() -> None:
        rngs = [rng_state({"attack": gen})]
        if ctx.enabled:
            import torch.distributed as dist

            rngs = [None] * ctx.world_size
            dist.all_gather_object(rngs, rng_state({"attack": gen}))
        if ctx.is_main:
            save_checkpoint(ckpt_path, {
                "config": cfg_dict, "world_size": ctx.world_size, "model": model.state_dict(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "scheme": scheme.state_dict(),
                "rng": rngs, **state})
        D.barrier(ctx)

    amp_ctx = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_amp else contextlib.nullcontext
    bar = tqdm(total=total, initial=state["epoch"] * spe + state["step"], disable=quiet or not ctx.is_main,
               desc=f"{cfg.scheme}", unit="step", dynamic_ncols=True)
    steps_here = 0
    t_call = time.monotonic()
    ddp.train()
    while state["epoch"] < cfg.epochs:
        epoch = state["epoch"]
        order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch))
        while state["step"] < spe:
            # at least one step per call, so that a loop of calls always progresses
            out_of_time = (stop_after_seconds is not None and steps_here > 0
                           and time.monotonic() - t_call >= stop_after_seconds)
            if ctx.enabled and stop_after_seconds is not None:  # every process must stop at the same step
                out_of_time = D.mean_over_ranks(float(out_of_time), ctx) > 0
            if (stop_after_steps is not None and steps_here >= stop_after_steps) or out_of_time:
                checkpoint()
                bar.close()
                D.shutdown(ctx)
                return None
            i = state["step"]
            idx = D.shard(order[i * B:(i + 1) * B], ctx)
            xg = x_train[order[i * B:(i + 1) * B]]
            if augment:  # on the global batch, from (seed, epoch, step): same on every process, on resume
                xg = crop_flip(xg, torch.Generator().manual_seed((cfg.seed * 1_000_003 + epoch) * 100_003 + i))
            x, y = D.shard(xg, ctx).to(dev, non_blocking=True), y_train[idx].to(dev, non_blocking=True)
            t0 = time.perf_counter()
            if cfg.eps_warmup > 0:  # a function of the global step only, so resume stays exact
                warm = max(1, round(cfg.eps_warmup * total))
                scheme.set_budget_scale(min(1.0, (epoch * spe + i + 1) / warm))
            with amp_ctx():
                loss, stats = scheme.loss(ddp, x, y, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            state["train_seconds"] += time.perf_counter() - t0
            value = D.mean_over_ranks(float(loss.detach()), ctx)
            if not math.isfinite(value):
                raise FloatingPointError(f"training loss became {value} at epoch {epoch}, step {i}")
            state["step_losses"].append(value)
            state["step"] += 1
            steps_here += 1
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3f}", epoch=epoch)
            if checkpoint_every and steps_here % checkpoint_every == 0 and state["step"] < spe:
                checkpoint()
        losses = state["step_losses"][epoch * spe:(epoch + 1) * spe]
        state["history"].append({"epoch": epoch, "loss": _history_summary(losses),
                                 "lr_end": float(sched.get_last_lr()[0]), "train_seconds": state["train_seconds"]})
        state["epoch"] += 1
        state["step"] = 0
        checkpoint()
    bar.close()

    result = None
    if ctx.is_main:
        import torch as _t

        model_path = out / "model.pt"
        save_checkpoint(model_path, unwrap(model).state_dict())
        result = {
            "config": cfg_dict,
            "device": str(dev) + (f" ({_t.cuda.get_device_name(dev)})" if dev.type == "cuda" else " (CPU)"),
            "world_size": ctx.world_size, "amp": use_amp,
            "n_train": n, "steps": total, "steps_per_epoch": spe,
            "train_seconds": state["train_seconds"],
            "seconds_per_epoch": state["train_seconds"] / cfg.epochs,
            "history": state["history"], "step_losses": state["step_losses"],
            "final_loss": state["history"][-1]["loss"],
            "model_file": str(model_path),
        }
        if cfg.eval_limit > 0:
            result["evaluation"] = evaluate_model(model, cfg, data_dir, dev, quiet=quiet)
        result["provenance"] = provenance(params=cfg, seeds={"seed": cfg.seed}, world_size=ctx.world_size)
        write_json(out / "result.json", result)
    D.barrier(ctx)
    D.shutdown(ctx)
    return result


def evaluate_model(model, cfg: TrainConfig, data_dir, dev, *, quiet: bool = True) -> dict[str, Any]:
    """Clean, per-threat, union and average accuracy on the first ``cfg.eval_limit`` test images."""
    import torch

    from .evaluate import robustness_matrix, summarize

    names = cfg.eval_threats or (tuple(t for t in cfg.threats if t != "rt") or ("linf", "l1", "l2"))
    x, y = _load_data(cfg, data_dir, "test", cfg.eval_limit)
    if cfg.dataset == "cifar10_jpeg":  # train on JPEG, evaluate on the lossless subset
        from .data import load_cifar10

        x, y = load_cifar10(data_dir, "test", "subset", cfg.eval_limit)
    model.eval()
    with torch.no_grad():
        clean = torch.cat([model(x[i:i + cfg.eval_batch_size].to(dev)).argmax(1).cpu()
                           for i in range(0, x.shape[0], cfg.eval_batch_size)]) == y
    threats = _threat_objects(names, cfg)
    gen = torch.Generator().manual_seed(cfg.seed + 12345)
    t0 = time.perf_counter()
    matrix = robustness_matrix(model, x, y, threats, strength="eval", batch_size=cfg.eval_batch_size,
                               generator=gen, device=dev)
    summary = summarize(clean, matrix, list(names))
    summary.update({"n_test": int(x.shape[0]), "threats": list(names), "eval_seconds": time.perf_counter() - t0,
                    "threat_budgets": {t.name: t.eps for t in threats},
                    "clean_correct": clean.int().tolist(), "matrix": matrix.int().tolist()})
    return summary


def evaluate_run(cfg: TrainConfig, out: str | Path, *, data_dir=None, device=None, quiet=True) -> dict[str, Any]:
    """Evaluate the finished run in ``out`` (its ``model.pt``); writes and returns ``<out>/eval.json``.

    The run's configuration must match ``cfg`` apart from the evaluation fields.
    """
    import torch

    from simulate.provenance import provenance, write_json

    from .checkpoint import CheckpointError
    from .models import get_model
    from .utils import get_device

    out = Path(out)
    res_path = out / "result.json"
    if not res_path.exists():
        raise CheckpointError(f"{res_path} is missing: train the run first")
    import json

    trained = json.loads(res_path.read_text())
    mine = dataclasses.asdict(cfg)
    skip = ("eval_limit", "eval_threats", "eval_batch_size")
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    # A field added after the run was trained must hold its default (what the older code did).
    if any(trained["config"].get(k, defaults[k]) != (list(v) if isinstance(v, tuple) else v)
           for k, v in mine.items() if k not in skip):
        raise CheckpointError(f"{res_path} was trained with another configuration")
    dev = get_device(device)
    model = get_model(cfg.model).to(dev)
    model.load_state_dict(torch.load(out / "model.pt", map_location=dev, weights_only=True))
    summary = evaluate_model(model, cfg, data_dir, dev, quiet=quiet)
    summary["device"] = str(dev) + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else " (CPU)")
    summary["train_seconds"] = trained["train_seconds"]
    summary["provenance"] = provenance(params=cfg, seeds={"seed": cfg.seed, "eval_seed": cfg.seed + 12345})
    write_json(out / "eval.json", summary)
    return summary


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    if args.checkpoint_every < 0:
        parser.error(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}")
    if args.stop_after_steps is not None and args.stop_after_steps < 0:
        parser.error(f"--stop-after-steps must be >= 0, got {args.stop_after_steps}")
    if args.stop_after_seconds is not None and not args.stop_after_seconds >= 0:
        parser.error(f"--stop-after-seconds must be >= 0, got {args.stop_after_seconds}")
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    from .checkpoint import CheckpointError
    from .data import DataError

    if args.evaluate_only:
        if cfg.eval_limit < 1:
            parser.error("--evaluate-only needs --eval-limit >= 1")
        try:
            summary = evaluate_run(cfg, args.out, data_dir=args.data_dir, device=args.device, quiet=args.quiet)
        except (DataError, CheckpointError) as exc:
            parser.error(str(exc))
        if not args.quiet:
            print(f"{cfg.scheme}: clean {summary['clean']:.3f}, union {summary['union']:.3f}, "
                  f"per threat {summary['per_threat']}")
        return 0
    try:
        result = train(cfg, args.out, data_dir=args.data_dir, device=args.device, resume=args.resume,
                       quiet=args.quiet, checkpoint_every=args.checkpoint_every,
                       stop_after_steps=args.stop_after_steps, stop_after_seconds=args.stop_after_seconds)
    except (DataError, CheckpointError) as exc:
        parser.error(str(exc))
    stoppable = args.stop_after_steps is not None or args.stop_after_seconds is not None
    if stoppable and result is None and not (Path(args.out) / "result.json").exists():
        return INTERRUPTED
    if result is not None and not args.quiet:
        line = f"{cfg.scheme}: final loss {result['final_loss']:.4f}, {result['train_seconds']:.1f} s training"
        ev = result.get("evaluation")
        if ev:
            line += f"; clean {ev['clean']:.3f}, union {ev['union']:.3f}"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
