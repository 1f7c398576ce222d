"""The Pix2Pix purifier of Mezhoudi (2023; after Isola et al. 2017's conditional GAN).

Generator: a U-Net (Ronneberger et al. 2015): an input block of two 3x3 convs with LeakyReLU,
``depth`` down blocks (stride-2 conv, batch norm, LeakyReLU), dropout at the bottleneck,
``depth`` up blocks (transposed conv, batch norm, ReLU) each joined to the skip of its scale,
a 1x1 conv and a sigmoid to [0, 1]. Critic: a PatchGAN on the (perturbed, candidate) pair:
five convs, the first strided, batch norm, LeakyReLU, dropout; a logit per patch. Generator
loss, Mezhoudi eq. (5): cGAN + ``alpha`` x perceptual + ``lam`` x L2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import Purifier, perceptual, register


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.BatchNorm2d(cout),
                         nn.LeakyReLU(0.2, inplace=True))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class UNet(nn.Module):
    def __init__(self, width: int, depth: int, dropout: float):
        super().__init__()
        widths = [width * 2 ** min(i, 3) for i in range(depth + 1)]  # doubling, capped at 8x as in pix2pix
        self.inc = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
                                 nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.2, inplace=True))
        self.downs = nn.ModuleList(_down(a, b) for a, b in zip(widths, widths[1:]))
        self.bottleneck = nn.Dropout(dropout)
        self.ups = nn.ModuleList(_up(b if i == depth - 1 else 2 * b, a)
                                 for i, (a, b) in reversed(list(enumerate(zip(widths, widths[1:])))))
        self.out = nn.Conv2d(2 * width, 3, 1)

    def forward(self, x):
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        h = self.bottleneck(skips.pop())
        for up in self.ups:
            h = torch.cat([up(h), skips.pop()], 1)
        return torch.sigmoid(self.out(h))


class PatchGAN(nn.Module):
    """Five convs on the 6-channel pair: the first strided, then batch norm and dropout."""

    def __init__(self, width: int, dropout: float):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(6, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2, inplace=True),
            nn.Dropout(dropout),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2, inplace=True),
            nn.Dropout(dropout),
            nn.Conv2d(4 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(4 * w, 1, 3, padding=1))

    def forward(self, adv, candidate):
        return self.net(torch.cat([adv, candidate], 1))


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """The cGAN log-loss of Mezhoudi eq. (2) on patch logits: ``real`` patches towards 1, fakes towards 0."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


class Pix2Pix(Purifier):
    def __init__(self, width, depth, critic_width, dropout, alpha, lam):
        super().__init__()
        self.generator, self.critic = UNet(width, depth, dropout), PatchGAN(critic_width, dropout)
        self.alpha, self.lam = alpha, lam

    def critic_terms(self, adv, clean, fake):
        loss = 0.5 * (gan_loss(self.critic(adv, clean), True) + gan_loss(self.critic(adv, fake.detach()), False))
        return {"loss": loss, "critic": loss}

    def generator_terms(self, adv, clean, fake, features):
        terms = {"cgan": gan_loss(self.critic(adv, fake), True), "perceptual": perceptual(features, fake, clean),
                 "l2": F.mse_loss(fake, clean)}
        terms["loss"] = terms["cgan"] + self.alpha * terms["perceptual"] + self.lam * terms["l2"]
        return terms


@register("pix2pix")
def pix2pix(width: int = 64, depth: int = 4, critic_width: int = 64, dropout: float = 0.5, alpha: float = 100.0,
            lam: float = 10.0) -> Pix2Pix:
    """Pix2Pix purifier (Mezhoudi 2023, Sec. 3-4), label-free, no distance bound of its own: a U-Net
    of ``width`` (64) base channels and ``depth`` (4) down and up blocks, a PatchGAN critic of
    ``critic_width`` (64), ``dropout`` (0.5); loss cGAN + ``alpha`` (100) x perceptual + ``lam``
    (10) x L2."""
    return Pix2Pix(width, depth, critic_width, dropout, alpha, lam)
