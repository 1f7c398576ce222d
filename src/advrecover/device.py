"""Resolve the ``device`` parameter: ``auto`` picks CUDA when present, else the CPU."""

from __future__ import annotations

import torch


def resolve(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device: {name!r} was requested but CUDA is not available (use 'auto' or 'cpu')")
    return torch.device(name)
