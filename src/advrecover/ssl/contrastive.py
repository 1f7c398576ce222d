"""Contrastive task (Mao et al. 2021, after SimCLR, Chen et al. 2020): InfoNCE over augmented views."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import Task, register


def info_nce(z: torch.Tensor, views: int, temperature: float) -> torch.Tensor:
    """InfoNCE of ``views`` x B embeddings laid out view-major (rows ``v * B + i`` are views of
    image i): for every anchor and every other view of its image, -log of the softmax over all
    other rows of the cosine similarity / ``temperature``; the mean over those pairs (Lawhon and
    Ducrest's L_s, Sec. 3.2.1; Khosla et al. 2020 with the image as its own class)."""
    z = F.normalize(z, dim=1)
    n = len(z)
    image = torch.arange(n, device=z.device) % (n // views)
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = (z @ z.T / temperature).masked_fill(self_mask, float("-inf"))
    log_prob = logits - logits.logsumexp(dim=1, keepdim=True)
    positive = (image[:, None] == image[None, :]) & ~self_mask
    return -log_prob[positive].mean()


class Contrastive(Task):
    """InfoNCE over ``views`` kornia views per image (Mao et al. 2021); arguments in :func:`build`."""

    def __init__(self, dim: int, image_size: int, projection: int, temperature: float, views: int,
                 crop_scale: float):
        import kornia.augmentation as K  # on first use: the other tasks' jobs skip kornia's import

        super().__init__()
        self.temperature, self.views = temperature, views
        self.project = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, projection))
        self.augment = K.AugmentationSequential(
            K.RandomResizedCrop((image_size, image_size), scale=(crop_scale, 1.0)), K.RandomHorizontalFlip(),
            K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8), K.RandomGrayscale(p=0.2))

    def loss(self, features, x):
        views = self.augment(x.repeat(self.views, 1, 1, 1))
        return info_nce(self.project(features(views)), self.views, self.temperature)


@register("contrastive")
def build(dim, image_size, projection: int = 128, temperature: float = 0.2, views: int = 4, crop_scale: float = 0.2):
    """Contrastive head (Mao et al. 2021): an MLP projection (``projection`` outputs, 128) of the
    victim's features; InfoNCE at ``temperature`` (0.2) over ``views`` (4) views per image made by
    kornia: random resized crop (area ``crop_scale``..1, 0.2), flip, colour jitter (p 0.8), grayscale
    (p 0.2); the other images of the batch are the negatives. Random: every call draws new views."""
    if views < 2:
        raise ValueError(f"contrastive views must be at least 2 (an anchor needs a positive), got {views}")
    return Contrastive(dim, image_size, projection, temperature, views, crop_scale)
