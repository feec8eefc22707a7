"""Train a classifier with one of the training schemes, resumably, on one or several processes.

    python -m empirical.train --dataset mnist --scheme max --threats linf,l1,l2 --out runs/mnist_max
    torchrun --standalone --nproc_per_node 2 -m empirical.train --dataset mnist --scheme msd ...

One loop serves every scheme (``empirical/schemes.py``): per step it draws the global batch
(:class:`BatchStream`), takes this process's slice, asks the scheme for the loss of the batch, and takes an
optimiser step (:class:`Trainer`).  The pieces:

* optimisation: SGD (momentum, weight decay) or Adam; the learning rate follows ``--schedule`` per step:
  ``cyclic`` (triangular one-cycle: linear from 0 up to ``--lr`` at 40% of the run, then linearly down to
  0, the short schedule of Wong et al. 2020 and Maini et al. 2020), ``piecewise`` (``--lr``, then x0.1
  after 50% and x0.01 after 75% of the run, Madry et al. style) or ``constant``;
* budget warm-up (``--eps-warmup``): the training budgets grow linearly over that fraction of the run;
* mixed precision: ``torch.autocast`` in bfloat16 on CUDA (``--amp auto``: on when the device is CUDA;
  never on CPU);
* checkpoints (``<out>/checkpoint.pt``) at the end of every epoch and every ``--checkpoint-every`` steps,
  written atomically, and exact resume (the default; ``--no-resume`` starts afresh): model, optimiser,
  scheduler, scheme state, RNG states (the attack generator of every process), epoch and step;
  ``--time-limit SECONDS`` stops at a checkpoint and exits with status 75 (run the same command again);
* seeds: every random stream is a child of ``numpy.random.SeedSequence(--seed)`` (``empirical.utils.STREAMS``):
  the model's initialisation, each epoch's order (key: epoch), the augmentation of each batch (epoch,
  step), the attacks' random starts (one generator per process: rank), the final evaluation;
* results: ``<out>/model.pt`` (state dict of the final model) and ``<out>/result.json`` (configuration,
  provenance, per-epoch history, training time, and, with ``--test-limit`` > 0, clean / per-threat /
  union / average accuracy on the first test images under the evaluation module's strongest attacks).

Defaults per dataset (``PRESETS``; every flag overrides them): MNIST - MnistCNN, Adam, peak lr 1e-3,
cyclic, batch 100, 10 epochs; CIFAR-10 - PreAct ResNet-18, SGD momentum 0.9, weight decay 5e-4, peak lr
0.1, cyclic, batch 128, 30 epochs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from simulate.cli import UNFINISHED, flag_name

from .cli import (RANGES, ArgumentParser, check_output, device_type, eps_type, number, path_type, ranged, row_name,
                  state_ranges)
from simulate.cli import Interrupted, command, deferred_stop
from simulate.provenance import remove_checked

__all__ = ["TrainConfig", "ConfigError", "PRESETS", "BatchStream", "StopRule", "Trainer", "train",
           "evaluate_model", "evaluate_run", "build_parser", "config_from_args", "main", "INTERRUPTED"]

#: Exit status of a run stopped by ``--time-limit`` or ``--stop-after-steps`` (checkpoint written; the same
#: command resumes it).
INTERRUPTED = UNFINISHED

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
#: Fields that only decide the final evaluation (a finished run may be evaluated again with others).
EVAL_FIELDS = ("test_limit", "eval_threats", "eval_batch_size", "eval_strength")
#: Strengths of the final evaluation (empirical.attacks.STRENGTHS): apgd (APGD-CE + APGD-T) or eval (the full
#: AutoAttack standard suite; empirical.evaluate and the tables use it).
EVAL_STRENGTHS = ("apgd", "eval")


class ConfigError(ValueError):
    """An invalid training configuration; ``field`` names the offending field."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name} {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that decides a training run (``None``: the dataset's preset, see ``PRESETS``)."""

    dataset: str = "mnist"
    scheme: str = "natural"
    threats: tuple[str, ...] = ()
    eps: dict[str, Any] = field(default_factory=dict)
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
    test_limit: int = 0
    eval_threats: tuple[str, ...] | None = None
    eval_batch_size: int = 200
    eval_strength: str = "apgd"
    augment: str = "auto"
    eps_warmup: float = 0.0

    def __post_init__(self) -> None:
        from .data import DATASETS
        from .models import MODELS
        from .schemes import SCHEMES
        from .threats import THREAT_MODELS

        def need(name: str, ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(name, message)

        datasets = [d for d in DATASETS if d in PRESETS]
        need("dataset", self.dataset in datasets, f"must be one of {datasets}, got {self.dataset!r}")
        need("scheme", self.scheme in SCHEMES, f"must be one of {list(SCHEMES)}, got {self.scheme!r}")
        need("eval_strength", self.eval_strength in EVAL_STRENGTHS,
             f"must be one of {list(EVAL_STRENGTHS)}, got {self.eval_strength!r}")
        for name in ("threats", "eval_threats"):
            value = getattr(self, name)
            if value is None:
                continue
            value = tuple(value)
            object.__setattr__(self, name, value)
            bad = [t for t in value if t not in THREAT_MODELS]
            need(name, not bad, f"must be names from {list(THREAT_MODELS)}, got {bad}")
            need(name, len(set(value)) == len(value), f"has a repeated threat: {value}")
        lo, hi = SCHEMES[self.scheme].n_threats
        k = len(self.threats)
        want = f"exactly {lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
        need("threats", k >= lo and (hi is None or k <= hi), f"of scheme {self.scheme!r}: needs {want}, got {k}")
        object.__setattr__(self, "eps", dict(self.eps))
        unknown = [t for t in self.eps if t not in THREAT_MODELS]
        need("eps", not unknown, f"has unknown threats {unknown}")
        for key, value in PRESETS[self.dataset].items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        for name, allowed in (("model", MODELS), ("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                              ("augment", AUGMENT), ("amp", AMP)):
            need(name, getattr(self, name) in allowed, f"must be one of {list(allowed)}, got {getattr(self, name)!r}")
        for name, (kind, lo_, hi_, lo_open, hi_open, _why) in FIELD_RANGES.items():
            v = getattr(self, name)
            if v is None and name in ("train_limit", "attack_steps"):
                continue
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (kind is float or isinstance(v, int))
            ok = ok and math.isfinite(v) and (v > lo_ if lo_open else v >= lo_) and (v < hi_ if hi_open else v <= hi_)
            need(name, ok, f"must be {'an integer' if kind is int else 'a number'} in {'(' if lo_open else '['}"
                           f"{lo_}, {hi_}{')' if hi_open else ']'}, got {v!r}")

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    @property
    def threat_dataset(self) -> str:
        """The budget table of this run's data set (:func:`empirical.threats.budget_table`)."""
        from .threats import budget_table

        return budget_table(self.dataset)

    def threat_objects(self, names) -> list:
        """The threats ``names`` with this run's budgets (``eps``; absent: the dataset's)."""
        from .threats import make_threats

        return make_threats(names, self.threat_dataset, self.eps)

    def as_dict(self) -> dict[str, Any]:
        """The configuration as JSON data (tuples as lists), as stored in checkpoints and results."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def training_dict(self) -> dict[str, Any]:
        """:meth:`as_dict` without the evaluation fields: what a resumed or re-evaluated run must match."""
        return {k: v for k, v in self.as_dict().items() if k not in EVAL_FIELDS}


def _shared(name: str, lo=None) -> tuple:
    kind, lo_, hi, why = RANGES[name]
    return kind, lo_ if lo is None else lo, hi, False, False, why


#: Numeric fields: (kind, low, high, low bound open, high bound open, reason for the bounds).
FIELD_RANGES = {
    "lr": (float, 0.0, 10.0, True, False, "a step > 0; peak rates above 10 diverge for every model and optimiser "
                                          "here"),
    "momentum": (float, 0.0, 1.0, False, True, "SGD momentum >= 1 lets the velocity grow without bound"),
    "weight_decay": (float, 0.0, 1.0, False, False, "a decay above 1 per unit learning rate wipes out the weights"),
    "batch_size": _shared("batch_size"),
    "epochs": (int, 1, 10000, False, False, "at least one pass; 10,000 epochs would not finish on any machine"),
    "train_limit": _shared("train_limit"),
    "attack_steps": (int, 1, 10000, False, False, "the cost grows linearly in the steps; 10,000 per batch would "
                                                  "not finish"),
    "seed": _shared("seed"),
    "test_limit": _shared("test_limit", lo=0),
    "eval_batch_size": _shared("batch_size"),
    "eps_warmup": (float, 0.0, 1.0, False, True, "a fraction of the run: the full budgets must be reached"),
}

FIELD_HELP = {
    "dataset": "data set: mnist, fashion_mnist, cifar10 (lossless subset), cifar10_jpeg (full, JPEG)",
    "scheme": "training scheme: natural, adv, avg, max, msd, sat, mng_ac",
    "threats": "comma-separated threats of the scheme: linf,l1,l2,rt (adv: exactly one)",
    "eps": "budgets, e.g. linf=0.3,l1=10,l2=2,rt=30/3; a threat left out keeps the dataset's",
    "model": "network: mnist_cnn, mnist_cnn_small, preact_resnet18",
    "optimizer": "sgd (momentum, weight decay) or adam",
    "lr": "peak learning rate",
    "momentum": "SGD momentum",
    "weight_decay": "weight decay",
    "schedule": "learning-rate schedule per step: cyclic, piecewise, constant",
    "batch_size": "global batch size (split evenly over the processes)",
    "epochs": "number of epochs",
    "train_limit": "train on the first N training images only",
    "attack_steps": "steps of the training attacks",
    "seed": "random seed; same seed, same run",
    "amp": "mixed precision: auto (bfloat16 autocast on CUDA only), on (needs CUDA), off",
    "test_limit": "evaluate on the first N test images at the end (0: no evaluation)",
    "eval_threats": "threats of the final evaluation",
    "eval_batch_size": "batch size of the final evaluation",
    "eval_strength": "attacks of the final evaluation: apgd (APGD-CE + APGD-T, quick) or eval (the full AutoAttack "
                     "standard suite: + FAB-T and Square; what empirical.evaluate reports)",
    "augment": "data augmentation: auto (random crop with 4-pixel padding + horizontal flip on CIFAR-10, "
               "none on MNIST), crop_flip, none",
    "eps_warmup": "fraction of the run over which the training budgets grow linearly from 0 to their value "
                  "(0: none); a common remedy when adversarial training stalls at the uniform prediction",
}


#: What a default of None means, for the help text.
DEFAULT_TEXT = {
    "eps": "MNIST linf=0.3,l1=10,l2=2,rt=30/3; CIFAR-10 linf=8/255,l1=12,l2=0.5,rt=30/3",
    "train_limit": "all", "attack_steps": "the attack module's training default (10)",
    "eval_threats": "the training threats attacked by gradients, or linf,l1,l2", "threats": "none",
}


def _threat_list(text: str) -> tuple[str, ...]:
    from .threats import THREAT_MODELS

    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in names if t not in THREAT_MODELS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown threats {bad} (allowed: comma-separated {', '.join(THREAT_MODELS)})")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a threat is repeated in {text!r}")
    return names


_threat_list.__name__ = "threat list"


def _field_argument(f) -> dict[str, Any]:
    """The add_argument keywords of configuration field ``f``: type with its range, or choices."""
    from .data import DATASETS
    from .models import MODELS
    from .schemes import SCHEMES

    choices = {"dataset": [d for d in DATASETS if d in PRESETS], "scheme": list(SCHEMES), "model": MODELS,
               "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "amp": AMP, "augment": AUGMENT,
               "eval_strength": EVAL_STRENGTHS}
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    shown = DEFAULT_TEXT.get(f.name, "the dataset's preset" if f.name in PRESETS["mnist"] else default)
    kw: dict[str, Any] = {"dest": f.name, "default": default, "help": f"{FIELD_HELP[f.name]} [default: {shown}]"}
    if f.name in choices:
        kw["choices"] = choices[f.name]
    elif f.name in ("threats", "eval_threats"):
        kw.update(type=_threat_list, metavar="LIST")
    elif f.name == "eps":
        kw.update(type=eps_type, metavar="BUDGETS")
    else:
        kind, lo, hi, lo_open, hi_open, why = FIELD_RANGES[f.name]
        why = ("0: no evaluation; " if f.name == "test_limit" else "") + why
        kw.update(type=number(kind, lo, hi, lo_open=lo_open, hi_open=hi_open, why=why),
                  metavar="N" if kind is int else "X")
    return kw


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m empirical.train", description=__doc__.split("\n\n")[0])
    for f in fields(TrainConfig):  # flags generated from the configuration's fields
        p.add_argument(flag_name(f.name), **_field_argument(f))
    p.add_argument("--out", type=path_type, required=True, help="output folder (checkpoint, model, result.json)")
    p.add_argument("--data-dir", type=path_type, default=None,
                   help="data folder [default: $ADVTRAIN_DATA_DIR, then ../shared/data]")
    p.add_argument("--device", type=device_type, default="auto",
                   help="auto (CUDA when available), cpu, cuda, cuda:N [default: auto]")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="start afresh even if <out>/checkpoint.pt exists")
    steps = number(int, 0, 10**9, why="a step count; no run here has 10**9 steps")
    p.add_argument("--checkpoint-every", type=steps, default=0, metavar="K",
                   help="also checkpoint every K steps (0: at the end of each epoch only) [default: 0]")
    p.add_argument("--time-limit", type=ranged("time_limit"), default=None, metavar="SECONDS",
                   help="wall-clock budget of this call: checkpoint and exit with status 75 at the first step "
                        "boundary after it; the same command resumes (at least one step per call)")
    p.add_argument("--stop-after-steps", type=steps, default=None, metavar="K",
                   help="checkpoint and exit with status 75 after K steps of this call (an interruption on purpose)")
    p.add_argument("--threads", type=ranged("threads"), default=None, metavar="N",
                   help="torch CPU threads [default: torch's]")
    p.add_argument("--quiet", action="store_true", help="no progress bar or final line")
    p.add_argument("--evaluate-only", action="store_true",
                   help="evaluate the finished run in --out (model.pt) with --test-limit/--eval-threats; "
                        "writes <out>/eval.json")
    return state_ranges(p)


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


class BatchStream:
    """The global batches of a run and this process's share of each.

    Epoch ``e``'s order is a permutation drawn from the seed stream ("data_order", e); the last incomplete
    batch is dropped so that every process's shard has the same size.  With augmentation, the global batch
    ``i`` of epoch ``e`` is cropped and flipped from the stream ("augment", e, i), so the draws are the same
    on every process and after a resume.
    """

    def __init__(self, x, y, cfg: TrainConfig, ctx):
        self.x, self.y, self.cfg, self.ctx = x, y, cfg, ctx
        self.n = int(x.shape[0])
        self.batch_size = cfg.batch_size
        if self.batch_size % ctx.world_size:
            raise ConfigError("batch_size", f"{self.batch_size} must be divisible by the number of processes "
                                            f"{ctx.world_size}")
        self.steps_per_epoch = self.n // self.batch_size
        if self.steps_per_epoch < 1:
            raise ConfigError("batch_size", f"{self.batch_size} exceeds the {self.n} training images")
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.augment = cfg.augment == "crop_flip" or (cfg.augment == "auto" and cfg.dataset.startswith("cifar10"))
        self._order: tuple[int, Any] = (-1, None)

    def order(self, epoch: int):
        import torch

        from .utils import stream_generator

        if self._order[0] != epoch:
            gen = stream_generator(self.cfg.seed, "data_order", epoch)
            self._order = (epoch, torch.randperm(self.n, generator=gen))
        return self._order[1]

    def batch(self, epoch: int, i: int, device):
        """This process's slice of global batch ``i`` of ``epoch``, on ``device``."""
        from . import distributed as D
        from .utils import stream_generator

        idx = self.order(epoch)[i * self.batch_size:(i + 1) * self.batch_size]
        xg = self.x[idx]
        if self.augment:
            xg = crop_flip(xg, stream_generator(self.cfg.seed, "augment", epoch, i))
        x = D.shard(xg, self.ctx).to(device, non_blocking=True)
        y = self.y[D.shard(idx, self.ctx)].to(device, non_blocking=True)
        return x, y


class StopRule:
    """Whether this call stops before its next step: after ``steps`` steps or ``seconds`` of wall time (at
    least one step per call, so that a chain of calls always progresses); the same decision on every
    process."""

    def __init__(self, steps: int | None, seconds: float | None, ctx, request=None):
        self.steps, self.seconds, self.ctx = steps, seconds, ctx
        self.request = request  # a simulate.cli.StopRequest: Ctrl-C / SIGTERM seen
        self.t0 = time.monotonic()

    def __call__(self, steps_here: int) -> bool:
        from . import distributed as D

        out_of_time = (self.seconds is not None and steps_here > 0
                       and time.monotonic() - self.t0 >= self.seconds) or bool(self.request)
        if self.ctx.enabled and (self.seconds is not None or self.request is not None):
            out_of_time = D.mean_over_ranks(float(out_of_time), self.ctx) > 0  # every process stops at one step
        return out_of_time or (self.steps is not None and steps_here >= self.steps)


def _optimizer(cfg: TrainConfig, params):
    import torch

    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


class Trainer:
    """The model, optimiser, learning-rate schedule, scheme and attack generator of one run; one optimiser
    step (:meth:`step`) and the state a checkpoint holds (:meth:`state_dict`, :meth:`load_state_dict`)."""

    def __init__(self, cfg: TrainConfig, ctx, total_steps: int):
        import torch

        from . import distributed as D
        from .models import get_model
        from .schemes import get_scheme
        from .utils import stream_generator, stream_seed

        self.cfg, self.ctx, self.total_steps = cfg, ctx, total_steps
        self.device = ctx.device
        self.use_amp = cfg.amp == "on" or (cfg.amp == "auto" and self.device.type == "cuda")
        if self.use_amp and self.device.type != "cuda":
            raise ConfigError("amp", "'on' needs a CUDA device")
        # nn.Module initialisers draw from torch's global generator: fork it, seed it from the run's stream
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(cfg.seed, "model_init"))
            self.model = get_model(cfg.model).to(self.device)
        self.net = D.wrap(self.model, ctx)
        self.optimizer = _optimizer(cfg, self.model.parameters())
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                           lambda s: lr_factor(cfg.schedule, s, total_steps))
        overrides = {} if cfg.attack_steps is None else {"steps": cfg.attack_steps}
        self.scheme = get_scheme(cfg.scheme, cfg.threat_objects(cfg.threats), attack_overrides=overrides,
                                 seed=cfg.seed).to(self.device)
        self.attack_generator = stream_generator(cfg.seed, "attack", ctx.rank)  # CPU: same draws on any device
        self.warmup_steps = max(1, round(cfg.eps_warmup * total_steps)) if cfg.eps_warmup > 0 else 0

    def state_dict(self) -> dict[str, Any]:
        from .checkpoint import rng_state

        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scheme": self.scheme.state_dict(),
                "rng": rng_state({"attack": self.attack_generator})}

    def save_checkpoint(self, path: Path, progress: dict[str, Any]) -> None:
        """Write the checkpoint (rank 0) with every process's generator state; all processes call this."""
        from . import distributed as D
        from .checkpoint import save_checkpoint

        state = self.state_dict()
        rngs = [state["rng"]]
        if self.ctx.enabled:
            import torch.distributed as dist

            rngs = [None] * self.ctx.world_size
            dist.all_gather_object(rngs, state["rng"])
        if self.ctx.is_main:
            save_checkpoint(path, {**state, "rng": rngs, "config": self.cfg.training_dict(),
                                   "world_size": self.ctx.world_size, **progress})
        D.barrier(self.ctx)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (``state["rng"]``: this process's generator states)."""
        from .checkpoint import set_rng_state

        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scheme.load_state_dict(state["scheme"])
        set_rng_state(state["rng"], {"attack": self.attack_generator})

    def step(self, x, y, global_step: int) -> float:
        """One optimiser step on batch (x, y), step ``global_step`` (0-based) of the run; the batch loss
        averaged over the processes."""
        import torch

        from . import distributed as D

        if self.warmup_steps:  # a function of the global step only, so resume stays exact
            self.scheme.set_budget_scale(min(1.0, (global_step + 1) / self.warmup_steps))
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if self.use_amp else contextlib.nullcontext()
        self.net.train()
        with amp:
            loss, _stats = self.scheme.loss(self.net, x, y, self.attack_generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return D.mean_over_ranks(float(loss.detach()), self.ctx)


def _device_label(dev) -> str:
    import torch

    return str(dev) + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else " (CPU)")


def _resume_state(path: Path, cfg: TrainConfig, ctx) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it belongs to this configuration and number of processes."""
    from .checkpoint import CheckpointError, load_checkpoint

    if not path.exists():
        return None
    ck = load_checkpoint(path, map_location=ctx.device)
    if ck.get("config") != cfg.training_dict() or ck.get("world_size") != ctx.world_size:
        raise CheckpointError(f"{path} belongs to another configuration or number of processes; "
                              "use another --out or --no-resume")
    return ck


def _run_steps(trainer: Trainer, stream: BatchStream, progress: dict[str, Any], stop: StopRule, save, bar,
               checkpoint_every: int) -> bool:
    """Train from ``progress`` (epoch, step, histories) to the end of the run or until ``stop``; True if the
    run is complete.  ``save()`` writes a checkpoint of the current state."""
    spe, cfg = stream.steps_per_epoch, trainer.cfg
    steps_here = 0
    while progress["epoch"] < cfg.epochs:
        epoch = progress["epoch"]
        while progress["step"] < spe:
            if stop(steps_here):
                save()
                return False
            i = progress["step"]
            x, y = stream.batch(epoch, i, trainer.device)
            t0 = time.perf_counter()
            value = trainer.step(x, y, epoch * spe + i)
            progress["train_seconds"] += time.perf_counter() - t0
            if not math.isfinite(value):
                raise FloatingPointError(f"training loss became {value} at epoch {epoch}, step {i}")
            progress["step_losses"].append(value)
            progress["step"] += 1
            steps_here += 1
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3f}", epoch=epoch)
            if checkpoint_every and steps_here % checkpoint_every == 0 and progress["step"] < spe:
                save()
        losses = progress["step_losses"][epoch * spe:(epoch + 1) * spe]
        progress["history"].append({"epoch": epoch, "loss": sum(losses) / len(losses),
                                    "lr_end": float(trainer.scheduler.get_last_lr()[0]),
                                    "train_seconds": progress["train_seconds"]})
        progress.update(epoch=epoch + 1, step=0)
        save()
    return True


def train(cfg: TrainConfig, out: str | Path, *, data_dir=None, device: str | None = None, resume: bool = True,
          quiet: bool = False, checkpoint_every: int = 0, stop_after_steps: int | None = None,
          time_limit: float | None = None) -> dict[str, Any] | None:
    """Run (or resume) the training of ``cfg`` into folder ``out``; the result dict, or None if stopped.

    ``stop_after_steps`` / ``time_limit``: checkpoint and return None after that many steps / that many
    seconds of this call (checked at step boundaries), so that a run under a per-command time limit ends
    cleanly and the next call resumes it exactly.  Ctrl-C or SIGTERM: the same at the next step boundary,
    then :class:`simulate.cli.Interrupted` is raised (naming the checkpoint).  The training and test data are
    read and checked before the first step; a finished run removes its checkpoint.

    Launched by torchrun, every process calls this; only rank 0 writes files and returns the result
    (the other ranks return None).
    """
    from tqdm.auto import tqdm

    from . import distributed as D
    from .data import load_dataset

    out = Path(out)
    ctx = D.init(device)
    ckpt_path = out / "checkpoint.pt"
    ck = _resume_state(ckpt_path, cfg, ctx) if resume else None  # a bad checkpoint fails before any work
    x_train, y_train = load_dataset(cfg.dataset, data_dir, "train", cfg.train_limit)
    test_data = load_test_split(cfg, data_dir) if cfg.test_limit > 0 and ctx.is_main else None
    stream = BatchStream(x_train, y_train, cfg, ctx)
    trainer = Trainer(cfg, ctx, stream.total_steps)
    progress: dict[str, Any] = {"epoch": 0, "step": 0, "history": [], "step_losses": [], "train_seconds": 0.0}
    if ck is not None:
        ck["rng"] = ck["rng"][ctx.rank]
        trainer.load_state_dict(ck)
        progress = {k: ck[k] for k in progress}

    bar = tqdm(total=stream.total_steps, initial=progress["epoch"] * stream.steps_per_epoch + progress["step"],
               disable=quiet or not ctx.is_main, desc=cfg.scheme, unit="step", dynamic_ncols=True)
    try:
        with deferred_stop() as request:
            done = _run_steps(trainer, stream, progress, StopRule(stop_after_steps, time_limit, ctx, request),
                              lambda: trainer.save_checkpoint(ckpt_path, progress), bar, checkpoint_every)
    finally:
        bar.close()
    if not done and request:
        D.shutdown(ctx)
        raise Interrupted(ckpt_path if ctx.is_main else None, signum=request.signum)
    result = None
    if done and ctx.is_main:
        result = _write_result(trainer, stream, progress, out, data_dir, quiet, test_data)
        remove_checked(ckpt_path)  # the run is finished and written (the checkpoint and its SHA-256 record)
    D.barrier(ctx)
    D.shutdown(ctx)
    return result


def _write_result(trainer: Trainer, stream: BatchStream, progress: dict[str, Any], out: Path, data_dir,
                  quiet: bool, test_data=None) -> dict[str, Any]:
    """Write ``<out>/model.pt`` and ``<out>/result.json`` (with the final evaluation if asked); the result."""
    from simulate.provenance import provenance, write_json

    from .checkpoint import save_checkpoint

    cfg = trainer.cfg
    save_checkpoint(out / "model.pt", trainer.model.state_dict())
    result = {
        "config": cfg.as_dict(), "device": _device_label(trainer.device), "world_size": trainer.ctx.world_size,
        "amp": trainer.use_amp, "n_train": stream.n, "steps": stream.total_steps,
        "steps_per_epoch": stream.steps_per_epoch, "train_seconds": progress["train_seconds"],
        "seconds_per_epoch": progress["train_seconds"] / cfg.epochs, "history": progress["history"],
        "step_losses": progress["step_losses"], "final_loss": progress["history"][-1]["loss"],
        "model_file": "model.pt",
    }
    if cfg.test_limit > 0:
        result["evaluation"] = evaluate_model(trainer.model, cfg, data_dir, trainer.device, quiet=quiet,
                                              test_data=test_data)
    result["provenance"] = provenance(params=cfg, seeds={"seed": cfg.seed}, world_size=trainer.ctx.world_size)
    write_json(out / "result.json", result)
    return result


def default_eval_threats(cfg: TrainConfig) -> tuple[str, ...]:
    """The threats of the final evaluation: ``eval_threats``, else the training threats attacked by
    gradients, else linf, l1, l2."""
    from .threats import THREAT_MODELS

    if cfg.eval_threats:
        return cfg.eval_threats
    return tuple(t for t in cfg.threats if THREAT_MODELS[t].gradient_based) or ("linf", "l1", "l2")


def load_test_split(cfg: TrainConfig, data_dir):
    """The first ``cfg.test_limit`` test images of the final evaluation (CIFAR-10 JPEG runs: the lossless
    subset)."""
    from .data import load_cifar10, load_dataset

    if cfg.dataset == "cifar10_jpeg":  # train on JPEG, evaluate on the lossless subset
        return load_cifar10(data_dir, "test", "subset", cfg.test_limit)
    return load_dataset(cfg.dataset, data_dir, "test", cfg.test_limit)


def evaluate_model(model, cfg: TrainConfig, data_dir, dev, *, quiet: bool = True, test_data=None) -> dict[str, Any]:
    """Clean, per-threat, union and average accuracy on the first ``cfg.test_limit`` test images
    (``test_data``: those images, already read)."""
    from .evaluate import clean_correct, robustness_matrix, summarize
    from .utils import stream_generator

    names = default_eval_threats(cfg)
    x, y = test_data if test_data is not None else load_test_split(cfg, data_dir)
    model.eval()
    clean = clean_correct(model, x, y, cfg.eval_batch_size, dev)
    threats = cfg.threat_objects(names)
    t0 = time.perf_counter()
    matrix = robustness_matrix(model, x, y, threats, strength=cfg.eval_strength, batch_size=cfg.eval_batch_size,
                               generator=stream_generator(cfg.seed, "evaluation"), device=dev, quiet=quiet)
    summary = summarize(clean, matrix, list(names))
    summary.update({"n_test": int(x.shape[0]), "threats": list(names), "eval_seconds": time.perf_counter() - t0,
                    "strength": cfg.eval_strength,
                    "threat_budgets": {t.name: t.eps for t in threats},
                    "clean_correct": clean.int().tolist(), "matrix": matrix.int().tolist()})
    return summary


#: Configuration keys of runs trained before the budgets became one field and the test limit was renamed.
_LEGACY = {"eval_limit": "test_limit"}


def _upgrade(config: dict[str, Any]) -> dict[str, Any]:
    config = {_LEGACY.get(k, k): v for k, v in config.items()}
    eps = dict(config.get("eps") or {})
    for name in ("linf", "l1", "l2"):
        v = config.pop(f"eps_{name}", None)
        if v is not None:
            eps[name] = v
    config["eps"] = eps
    return config


def evaluate_run(cfg: TrainConfig, out: str | Path, *, data_dir=None, device=None, quiet=True) -> dict[str, Any]:
    """Evaluate the finished run in ``out`` (its ``model.pt``); writes and returns ``<out>/eval.json``.

    The run's configuration must match ``cfg`` apart from the evaluation fields.
    """
    from simulate.provenance import provenance, write_json

    from .checkpoint import CheckpointError, read_torch_file
    from .models import get_model
    from .utils import get_device

    out = Path(out)
    res_path = out / "result.json"
    if not res_path.is_file():
        raise CheckpointError(f"{res_path} is missing: train the run first")
    try:
        trained = json.loads(res_path.read_text())
        config, train_seconds = _upgrade(trained["config"]), trained["train_seconds"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{res_path} is not a result of empirical.train ({type(exc).__name__})") from None
    defaults = TrainConfig(dataset=cfg.dataset, scheme=cfg.scheme, threats=cfg.threats).training_dict()
    mine = cfg.training_dict()
    # A field added after the run was trained must hold its default (what the older code did).
    if any(config.get(k, defaults[k]) != v for k, v in mine.items()):
        raise CheckpointError(f"{res_path} was trained with another configuration")
    dev = get_device(device)
    model = get_model(cfg.model).to(dev)
    state = read_torch_file(out / "model.pt", map_location=dev, what="model file")
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(f"{out / 'model.pt'} does not fit model {cfg.model!r}: {first}") from None
    summary = evaluate_model(model, cfg, data_dir, dev, quiet=quiet)
    summary["device"] = _device_label(dev)
    summary["train_seconds"] = train_seconds
    summary["provenance"] = provenance(params=cfg, seeds={"seed": cfg.seed, "evaluation_stream": "evaluation"})
    write_json(out / "eval.json", summary)
    return summary


@command
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Under torchrun every process runs this; only rank 0 writes the run folder, so only rank 0 checks
    # and locks it (the other ranks would find rank 0's lock and refuse).
    if int(os.environ.get("RANK", "0")) == 0:
        check_output(parser, "--out", args.out, folder=True)
    try:
        cfg = config_from_args(args)
    except ConfigError as exc:
        parser.error(f"{flag_name(exc.field)}: {exc.message}")
    if args.evaluate_only and cfg.test_limit < 1:
        parser.error("--test-limit: --evaluate-only needs --test-limit >= 1")
    if not args.evaluate_only and args.resume and (Path(args.out) / "result.json").exists() and not (
            Path(args.out) / "checkpoint.pt").exists():
        parser.error(f"--out: {str(args.out)!r} holds a finished run (result.json); choose another --out, "
                     f"--evaluate-only to evaluate it again, or --no-resume to train it again")
    from .checkpoint import CheckpointError
    from .data import DataError
    from .utils import set_threads

    set_threads(args.threads)
    device = None if args.device == "auto" else args.device
    try:
        if args.evaluate_only:
            summary = evaluate_run(cfg, args.out, data_dir=args.data_dir, device=device, quiet=args.quiet)
            if not args.quiet:
                print(f"{row_name(cfg.scheme, cfg.threats)} (--scheme {cfg.scheme}): clean {summary['clean']:.3f}, "
                      f"union {summary['union']:.3f}, "
                      f"per threat {summary['per_threat']}")
            return 0
        result = train(cfg, args.out, data_dir=args.data_dir, device=device, resume=args.resume,
                       quiet=args.quiet, checkpoint_every=args.checkpoint_every,
                       stop_after_steps=args.stop_after_steps, time_limit=args.time_limit)
    except DataError as exc:
        parser.error(f"--data-dir: {exc}")
    except CheckpointError as exc:
        parser.error(f"--out: {exc}")
    except ConfigError as exc:
        parser.error(f"{flag_name(exc.field)}: {exc.message}")
    except FloatingPointError as exc:
        parser.error(f"--lr: {exc} (try a smaller --lr)")
    if result is None and not (Path(args.out) / "result.json").exists():
        return INTERRUPTED
    if result is not None and not args.quiet:
        line = (f"{row_name(cfg.scheme, cfg.threats)} (--scheme {cfg.scheme}): final loss {result['final_loss']:.4f}, "
                f"{result['train_seconds']:.1f} s training")
        ev = result.get("evaluation")
        if ev:
            line += f"; clean {ev['clean']:.3f}, union {ev['union']:.3f}"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
