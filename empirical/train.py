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

This module is the loop and the command; the configuration and its flags are :mod:`empirical.train_config`,
the final evaluation :mod:`empirical.train_eval`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import time
from pathlib import Path
from typing import Any

from simulate.core.cli import UNFINISHED, Interrupted, command, deferred_stop, flag_name
from simulate.core.provenance import remove_checked

from .cli import ArgumentParser, claim_output, device_type, number, path_type, ranged, row_name, state_ranges
from .train_config import (PRESETS, ConfigError, TrainConfig, add_config_arguments,  # noqa: F401
                           config_from_args)
from .train_eval import default_eval_threats, evaluate_model, evaluate_run, load_test_split  # noqa: F401
from .utils import device_label

__all__ = ["TrainConfig", "ConfigError", "PRESETS", "BatchStream", "StopRule", "Trainer", "train",
           "evaluate_model", "evaluate_run", "build_parser", "config_from_args", "main", "INTERRUPTED"]

#: Exit status of a run stopped by ``--time-limit`` or ``--stop-after-steps`` (checkpoint written; the same
#: command resumes it).
INTERRUPTED = UNFINISHED


# ------------------------------------------------------------------------------------------------------
# Batches, optimiser step, checkpoint state
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


# ------------------------------------------------------------------------------------------------------
# The run: resume, loop, result
# ------------------------------------------------------------------------------------------------------
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
        "config": cfg.as_dict(), "device": device_label(trainer.device), "world_size": trainer.ctx.world_size,
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


# ------------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m empirical.train", description=__doc__.split("\n\n")[0])
    add_config_arguments(p)  # flags generated from the configuration's fields
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


@command
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Under torchrun every process runs this; only rank 0 writes the run folder, so only rank 0 checks
    # and locks it (the other ranks would find rank 0's lock and refuse).
    if int(os.environ.get("RANK", "0")) == 0:
        claim_output(parser, "--out", args.out, folder=True)
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
