"""Stored images to tensors: (N, H, W, 3) uint8 or float -> (N, 3, H, W) float32 in [0, 1]."""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) -> (N, 3, H, W) float32, contiguous: uint8 scaled to [0, 1], floats as stored."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return (x.div_(255) if images.dtype == np.uint8 else x).contiguous()


def pool_tensor(path, what: str):
    """The pool at ``path`` and its images as a tensor; an empty pool is an error naming ``what``
    (the params key that chose it)."""
    from .pools import read_pool

    pool = read_pool(path)
    if not len(pool.images):
        raise ValueError(f"{path}: the pool of {what} is empty")
    return pool, to_tensor(pool.images)
