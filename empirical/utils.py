"""Small helpers shared by the empirical modules: device choice, seeding, torch random draws from a Generator."""

from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["get_device", "seed_everything", "make_generator", "rand_like", "randn_like", "set_threads"]


def get_device(name: str | None = None) -> torch.device:
    """``name`` ('cpu', 'cuda', 'cuda:1', 'auto' or None) as a device; None/'auto' picks CUDA when available."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch's global generators (for code we do not control, e.g. cuDNN, data order)
    and return a fresh CPU ``torch.Generator`` seeded with ``seed`` for our own draws."""
    if not (isinstance(seed, (int, np.integer)) and 0 <= seed < 2**63):
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))
    return make_generator(seed)


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def _gen_device(generator: torch.Generator | None, fallback: torch.device) -> torch.device:
    return torch.device(generator.device) if generator is not None else fallback


def rand_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """U[0, 1) numbers shaped like ``x``, drawn on the generator's device and moved to ``x``'s
    (so a CPU generator gives the same numbers whatever device the data live on)."""
    dev = _gen_device(generator, x.device)
    return torch.rand(x.shape, generator=generator, device=dev, dtype=x.dtype).to(x.device)


def randn_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal numbers shaped like ``x`` (see :func:`rand_like` for the device rule)."""
    dev = _gen_device(generator, x.device)
    return torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype).to(x.device)


def set_threads(n: int | None) -> None:
    """Limit torch's intra-op threads (the machines are shared); None leaves the default."""
    if n is not None:
        torch.set_num_threads(int(n))
