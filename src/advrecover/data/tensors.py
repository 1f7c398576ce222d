"""Stored images to tensors: (N, H, W, 3) uint8 or float -> (N, 3, H, W) float32 in [0, 1]."""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) -> (N, 3, H, W) float32, contiguous: uint8 scaled to [0, 1], floats as stored."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return (x.div_(255) if images.dtype == np.uint8 else x).contiguous()
