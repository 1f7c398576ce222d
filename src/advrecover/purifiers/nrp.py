"""NRP, the Neural Representation Purifier of Naseer et al. (CVPR 2020), light "ResG" generator.

Generator: a 3x3 conv to ``width`` channels with LeakyReLU(0.1), ``blocks`` residual blocks
without batch norm (conv-ReLU-conv plus identity), a 3x3 conv back to 3 channels (the
official ``NRP_resG``). Critic: a small strided conv net scoring whole images, trained with the
relativistic average loss. Generator loss (their Sec. 3.3): ``perceptual`` x feature distance
+ ``pixel`` x mean squared error + ``adversarial`` x relativistic loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import Purifier, perceptual, register, relativistic


class ResidualBlock(nn.Module):
    """conv-ReLU-conv plus identity, no batch norm (Lim et al. 2017's EDSR block, as NRP_resG uses)."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


class Generator(nn.Module):
    def __init__(self, width: int, blocks: int):
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))
        self.trunk = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)])
        self.tail = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, x):
        return self.tail(self.trunk(self.head(x)))


class Critic(nn.Module):
    """Strided 3x3 convs with LeakyReLU(0.2), global average pool, one score per image."""

    def __init__(self, width: int, depth: int = 3):
        super().__init__()
        layers, channels = [nn.Conv2d(3, width, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)], width
        for i in range(depth):
            out = width * 2 ** (i + 1)
            layers += [nn.Conv2d(channels, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            channels = out
        self.features, self.score = nn.Sequential(*layers), nn.Linear(channels, 1)

    def forward(self, x):
        return self.score(self.features(x).mean((2, 3))).squeeze(1)


class NRP(Purifier):
    def __init__(self, width, blocks, critic_width, perceptual_weight, pixel_weight, adversarial_weight):
        super().__init__()
        self.generator, self.critic = Generator(width, blocks), Critic(critic_width)
        self.weights = (perceptual_weight, pixel_weight, adversarial_weight)

    def critic_terms(self, adv, clean, fake):
        loss = relativistic(self.critic(clean), self.critic(fake.detach()))
        return {"loss": loss, "critic": loss}

    def generator_terms(self, adv, clean, fake, features):
        w_feat, w_pix, w_adv = self.weights
        real_logits = self.critic(clean).detach()
        terms = {"perceptual": perceptual(features, fake, clean), "pixel": F.mse_loss(fake, clean),
                 "adversarial": relativistic(self.critic(fake), real_logits)}
        terms["loss"] = w_feat * terms["perceptual"] + w_pix * terms["pixel"] + w_adv * terms["adversarial"]
        return terms


@register("nrp")
def nrp(width: int = 64, blocks: int = 23, critic_width: int = 64, perceptual: float = 1.0, pixel: float = 1.0,
        adversarial: float = 0.005) -> NRP:
    """NRP (Naseer et al. 2020), label-free, no distance bound of its own: the ResG generator of
    ``width`` channels (64) and ``blocks`` residual blocks (23, the official NRP_resG), a critic of
    ``critic_width`` (64); loss weights ``perceptual`` (1.0), ``pixel`` (1.0), ``adversarial``
    (0.005, ESRGAN's)."""
    return NRP(width, blocks, critic_width, perceptual, pixel, adversarial)
