"""Rotation task (Gidaris, Singh and Komodakis 2018): predict which of 4 rotations an image underwent."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import Task, register


class Rotation(Task):
    """Four-way rotation prediction (Gidaris et al. 2018); arguments in :func:`build`."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.classify = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 4))

    def loss(self, features, x):
        rotated = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])
        target = torch.arange(4, device=x.device).repeat_interleave(len(x))
        return F.cross_entropy(self.classify(features(rotated)), target)


@register("rotation")
def build(dim, image_size, hidden: int = 128):
    """Rotation head (Gidaris et al. 2018; Lawhon and Ducrest's L_r): an MLP (``hidden`` units, 128) on
    the victim's features of the image rotated by 0, 90, 180 and 270 degrees; cross-entropy against
    the rotation applied, averaged over the four (the targets come from the rotation, not a label)."""
    return Rotation(dim, hidden)
