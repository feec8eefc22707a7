"""Small helpers shared by the empirical modules: device choice, seed streams, torch random draws from a Generator."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["get_device", "device_label", "STREAMS", "stream_seed", "stream_generator", "make_generator", "rand_like",
           "randn_like", "set_threads"]


def get_device(name: str | None = None) -> torch.device:
    """``name`` ('cpu', 'cuda', 'cuda:1', 'auto' or None) as a device; None/'auto' picks CUDA when available."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def device_label(dev) -> str:
    """The device and, on CUDA, its name, as results record it."""
    return str(dev) + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else " (CPU)")


#: Independent random streams of one run, each a child of ``SeedSequence(seed)`` by its spawn key.
STREAMS = {"model_init": 0, "data_order": 1, "augment": 2, "attack": 3, "evaluation": 4, "threat_sampler": 5,
           "noise_generator": 6}


def stream_seed(seed: int, stream: str, *key: int) -> int:
    """A 64-bit seed for the named stream of run ``seed`` (``key``: e.g. epoch, step, rank), from
    ``numpy.random.SeedSequence(seed, spawn_key=(stream, *key))``: distinct streams and keys give
    statistically independent seeds, the same arguments the same seed."""
    if not (isinstance(seed, (int, np.integer)) and seed >= 0):
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    ss = np.random.SeedSequence(int(seed), spawn_key=(STREAMS[stream], *(int(k) for k in key)))
    return int(ss.generate_state(1, dtype=np.uint64)[0])


def stream_generator(seed: int, stream: str, *key: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with :func:`stream_seed`."""
    return make_generator(stream_seed(seed, stream, *key), device)


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
