"""Stored images to tensors: (N, H, W, 3) uint8 -> (N, 3, H, W) float in [0, 1]."""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [0, 1], contiguous."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255).contiguous()
