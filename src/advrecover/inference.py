"""One answer per image: every prediction the pipeline records goes through :func:`logits`.

The attack stage, the evaluation and the adaptive stage used to ask the victim in different
memory layouts; for images within 1e-6 of a decision boundary (DeepFool's) the layout decided
the label. Here there is one policy: float32 inputs in channels-last layout on a model prepared
by :func:`prepare` (channels-last weights, eval mode), in batches of the caller's size, and the
label is ``argmax`` (its tie-break, the first maximum, everywhere: DeepFool leaves exact ties).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

LAYOUT = torch.channels_last


def prepare(model: nn.Module, device) -> nn.Module:
    """``model`` on ``device`` in the one memory layout, in eval mode."""
    return model.to(device, memory_format=LAYOUT).eval()


def as_input(x: torch.Tensor, device=None) -> torch.Tensor:
    """A batch (N, 3, H, W) as every model here takes it: float32, channels-last, on ``device``."""
    return x.to(device=device, dtype=torch.float32).contiguous(memory_format=LAYOUT)


def logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's logits on ``x`` under the one layout policy (differentiable)."""
    return model(as_input(x, x.device))


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int, device) -> np.ndarray:
    """Top-1 predictions on ``images`` (N, 3, H, W, on any device), in batches of ``batch_size``."""
    out = [logits(model, images[s:s + batch_size].to(device)).argmax(1).cpu().numpy()
           for s in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

