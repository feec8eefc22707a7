"""Per-example attack losses on logits [n, K] and int64 labels [n]; the attacker maximises them.

``ce``: cross-entropy. ``margin``: max_{j != y} z_j - z_y (positive iff misclassified; the
Carlini-Wagner margin). ``dlr``: the difference-of-logits ratio of Croce & Hein (2020),
-(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3 + 1e-12), pi the logits sorted in decreasing order (K >= 3).
``dlr_targeted`` (APGD-T, Croce & Hein 2020): -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12) for a target
class t (K >= 4); it takes the targets as a third argument.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["LOSSES", "get_loss", "margin", "dlr_targeted"]


def ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none")


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    z_y = logits.gather(1, y[:, None])[:, 0]
    other = logits.scatter(1, y[:, None], float("-inf"))
    return other.amax(1) - z_y


def dlr(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if logits.shape[1] < 3:
        raise ValueError("the dlr loss needs at least 3 classes; use 'margin' for binary models")
    srt, _ = logits.sort(dim=1, descending=True)
    return margin(logits, y) / (srt[:, 0] - srt[:, 2] + 1e-12)


def dlr_targeted(logits: torch.Tensor, y: torch.Tensor, y_target: torch.Tensor) -> torch.Tensor:
    if logits.shape[1] < 4:
        raise ValueError("the targeted dlr loss needs at least 4 classes")
    srt, _ = logits.sort(dim=1, descending=True)
    z_y = logits.gather(1, y[:, None])[:, 0]
    z_t = logits.gather(1, y_target[:, None])[:, 0]
    return -(z_y - z_t) / (srt[:, 0] - 0.5 * (srt[:, 2] + srt[:, 3]) + 1e-12)


LOSSES = {"ce": ce, "margin": margin, "dlr": dlr}


def get_loss(name: str):
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {tuple(LOSSES)}, got {name!r}")
    return LOSSES[name]
