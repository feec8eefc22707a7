"""The final evaluation of a training run: clean, per-threat, union and average accuracy on the first
``test_limit`` test images under the evaluation module's attacks (:func:`evaluate_model`), and the evaluation of
a finished run folder again with other evaluation fields (:func:`evaluate_run`, ``--evaluate-only``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from simulate.core.outputs import read_json

from .train_config import TrainConfig
from .utils import device_label

__all__ = ["default_eval_threats", "load_test_split", "evaluate_model", "evaluate_run"]


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
    from .evaluate import attack_log, clean_correct, robustness_matrix_and_log, summarize
    from .utils import stream_generator

    names = default_eval_threats(cfg)
    x, y = test_data if test_data is not None else load_test_split(cfg, data_dir)
    model.eval()
    clean = clean_correct(model, x, y, cfg.eval_batch_size, dev)
    threats = cfg.threat_objects(names)
    t0 = time.perf_counter()
    matrix, first, attack_names = robustness_matrix_and_log(
        model, x, y, threats, strength=cfg.eval_strength, batch_size=cfg.eval_batch_size,
        generator=stream_generator(cfg.seed, "evaluation"), device=dev, quiet=quiet)
    summary = summarize(clean, matrix, list(names))
    summary.update({"n_test": int(x.shape[0]), "threats": list(names), "eval_seconds": time.perf_counter() - t0,
                    "strength": cfg.eval_strength,
                    "threat_budgets": {t.name: t.eps for t in threats},
                    "clean_correct": clean.int().tolist(), "matrix": matrix.int().tolist(),
                    # which attack of the suite first broke each example, per threat (empirical.evaluate's log)
                    "attack_log": attack_log(first, attack_names, list(names))})
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
        trained = read_json(res_path)
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
    summary["device"] = device_label(dev)
    summary["train_seconds"] = train_seconds
    summary["provenance"] = provenance(params=cfg, seeds={"seed": cfg.seed, "evaluation_stream": "evaluation"})
    write_json(out / "eval.json", summary)
    return summary
