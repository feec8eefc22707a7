"""Models: the MNIST CNN of the multi-perturbation literature, PreAct ResNet-18, the theory's linear erf unit.

Every multi-class model maps images ``x`` [n, C, H, W] in [0, 1] to logits [n, K]. :class:`LinearErf` is
the classifier of the theory, sigma = erf((w . xi - b) / s) with |w| = 1, returning sigma [n];
:class:`TwoClassLogits` wraps it as two-class logits so that the attacks (which expect logits and
int64 labels) apply to it unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MnistCNN", "SmallMnistCNN", "PreActBlock", "PreActResNet18", "LinearErf", "TwoClassLogits", "get_model", "MODELS",
           "tau_to_class"]


def max_pool2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max-pooling, [n, C, H, W] -> [n, C, H/2, W/2], as ``F.max_pool2d(x, 2)``.

    Where no gradient is recorded (evaluation, the query attacks) the pool runs on a channels-last copy and
    returns to the standard layout: torch's CPU kernel for the standard layout is several times slower
    (bench/pool.py), and a maximum is exact, so the values are the same to the bit.  With autograd the standard
    kernel runs (its backward is not slower)."""
    if torch.is_grad_enabled() and x.requires_grad:
        return F.max_pool2d(x, 2)
    return F.max_pool2d(x.contiguous(memory_format=torch.channels_last), 2).contiguous()


class MnistCNN(nn.Module):
    """conv 32 5x5 (same padding) - ReLU - max-pool 2 - conv 64 5x5 - ReLU - max-pool 2 - fc 1024 - ReLU - fc 10.

    The MNIST architecture of Madry et al. (2018), also used by Tramer & Boneh (2019) and Maini et al.
    (2020). Input [n, 1, 28, 28] in [0, 1]; output logits [n, 10].
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(64 * 7 * 7, 1024)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = max_pool2(F.relu(self.conv1(x)))
        x = max_pool2(F.relu(self.conv2(x)))
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


class SmallMnistCNN(nn.Module):
    """A 4.7x cheaper variant of :class:`MnistCNN` for CPU checks: conv 16 5x5 - pool - conv 32 5x5 - pool -
    fc 128 - fc 10 (same padding, ReLU). Input [n, 1, 28, 28]; logits [n, 10]."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5, padding=2)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = max_pool2(F.relu(self.conv1(x)))
        x = max_pool2(F.relu(self.conv2(x)))
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016, "Identity mappings"): BN-ReLU-conv3x3-BN-ReLU-conv3x3 + shortcut."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    """PreAct ResNet-18 for 32 x 32 images: conv 64, four stages of two blocks (64, 128, 256, 512), BN-ReLU,
    global average pool, linear. Input [n, 3, 32, 32] in [0, 1] (no normalisation layer); logits [n, K]."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        layers, in_planes = [], 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            for s in (stride, 1):
                layers.append(PreActBlock(in_planes, planes, s))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(self.conv1(x))
        out = F.relu(self.bn(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


class LinearErf(nn.Module):
    """The theory's classifier sigma = erf((w . xi - b) / s) with |w| = 1 (notation of theory/params.py).

    ``dim`` = N (784 for MNIST), ``erf_scale`` = s. The weight is stored as ``w`` and used normalised,
    w / |w|, so the unit-norm constraint holds in the forward pass whatever the optimiser does;
    :meth:`renormalize_` writes the normalisation back (the online SGD step of the theory,
    w <- (w - (eta_w/N) dL/dw) / |.|). Input [n, ...] flattened to [n, N]; output sigma [n] in (-1, 1).
    """

    def __init__(self, dim: int = 784, erf_scale: float = 1.0):
        super().__init__()
        if not (isinstance(dim, int) and dim >= 1):
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        if not (erf_scale > 0 and math.isfinite(erf_scale)):
            raise ValueError(f"erf_scale must be finite and > 0, got {erf_scale!r}")
        self.dim, self.erf_scale = dim, float(erf_scale)
        w = torch.zeros(dim)
        w[0] = 1.0
        self.w = nn.Parameter(w)
        self.b = nn.Parameter(torch.zeros(()))

    def unit_w(self) -> torch.Tensor:
        return self.w / self.w.norm()

    def preactivation(self, x: torch.Tensor) -> torch.Tensor:
        """(w . xi - b) / s, shape [n]."""
        return (x.flatten(1) @ self.unit_w() - self.b) / self.erf_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.erf(self.preactivation(x))

    @torch.no_grad()
    def renormalize_(self) -> None:
        self.w.div_(self.w.norm())


def tau_to_class(tau: torch.Tensor) -> torch.Tensor:
    """Labels tau in {+1, -1} as class indices {1, 0} for :class:`TwoClassLogits`."""
    return (tau > 0).long()


class TwoClassLogits(nn.Module):
    """Wrap a binary model f(x) with sign(f) the predicted tau as logits [-u/2, u/2], u its pre-activation.

    The cross-entropy of these logits is softplus(-tau u) and the margin is tau u, so every attack applies
    to binary models; use :func:`tau_to_class` for the labels.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.model.preactivation(x) if hasattr(self.model, "preactivation") else self.model(x)
        u = u.reshape(-1)
        return torch.stack([-u / 2, u / 2], dim=1)


MODELS = ("mnist_cnn", "mnist_cnn_small", "preact_resnet18", "linear_erf")


def get_model(name: str, **kwargs) -> nn.Module:
    """A fresh model by name (one of :data:`MODELS`); keyword arguments go to its constructor."""
    if name == "mnist_cnn":
        return MnistCNN(**kwargs)
    if name == "mnist_cnn_small":
        return SmallMnistCNN(**kwargs)
    if name == "preact_resnet18":
        return PreActResNet18(**kwargs)
    if name == "linear_erf":
        return LinearErf(**kwargs)
    raise ValueError(f"model name must be one of {MODELS}, got {name!r}")
