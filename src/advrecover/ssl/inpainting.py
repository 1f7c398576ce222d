"""Inpainting task (Pathak et al. 2016, context encoders): fill a masked centre from its context."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from . import Task, register


def centre(size: int) -> slice:
    """The rows (and columns) of the central square of side ``size // 2``."""
    return slice(size // 4, size // 4 + size // 2)


class Inpainting(Task):
    """Fill the masked central square (Pathak et al. 2016), L2; arguments in :func:`build`."""

    def __init__(self, dim: int, image_size: int, width: int):
        super().__init__()
        self.size, self.width = image_size, width
        self.expand = nn.Linear(dim, width * (image_size // 8) ** 2)
        self.decode = nn.Sequential(
            nn.ReLU(), nn.ConvTranspose2d(width, width, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(width, 3, 4, 2, 1), nn.Sigmoid())

    def loss(self, features, x):
        c = centre(self.size)
        masked = x.clone()
        masked[:, :, c, c] = 0.5
        code = self.expand(features(masked)).view(len(x), self.width, self.size // 8, self.size // 8)
        return F.mse_loss(self.decode(code), x[:, :, c, c])


@register("inpainting")
def build(dim, image_size, width: int = 32):
    """Inpainting head (Pathak et al. 2016; Lawhon and Ducrest's L_i): the victim's features of the
    image with its central square (half the side) set to grey, decoded by a linear layer and two
    transposed convolutions (``width`` channels, 32) into that square; mean squared error against
    the true centre. The image side must be a multiple of 8."""
    if image_size % 8:
        raise ValueError(f"inpainting needs an image side that is a multiple of 8, got {image_size}")
    return Inpainting(dim, image_size, width)
