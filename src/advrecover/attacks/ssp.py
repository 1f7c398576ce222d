"""SSP: self-supervised perturbation by feature distortion (Naseer et al., CVPR 2020; Mezhoudi's Algorithm 1).

Label-free: maximise the distance between the features of the clean and the perturbed image,
||P(x) - P(x')||, within an L_inf ball of radius ``eps``, by sign-gradient ascent with step
``step`` for ``steps`` iterations from a uniform random start, clipping to [0, 1]. The
feature network P is the victim's penultimate layer (a network trained inside the pipeline)
or, with ``network: vgg16`` and a local ``weights`` file, torchvision's VGG16 up to relu3_3
as in the NRP code (weights are never downloaded).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchattacks.attack import Attack

from ..models.resnet import Normalize
from ..models.victim import IMAGENET_MEAN, IMAGENET_STD, load_state, load_weights
from . import register
from .features import penultimate


def vgg16_relu3_3(weights: str) -> nn.Module:
    import torchvision

    vgg = torchvision.models.vgg16(weights=None)
    load_weights(vgg, load_state(weights, "attack ssp weights"), weights, "attack ssp weights")
    return nn.Sequential(Normalize(IMAGENET_MEAN, IMAGENET_STD), vgg.features[:16]).eval()


class SSP(Attack):
    def __init__(self, model, features, eps: float, step: float, steps: int, random_start: bool = True):
        super().__init__("SSP", model)
        self.features, self.eps, self.step, self.steps, self.random_start = features, eps, step, steps, random_start
        self.supported_mode = ["default"]

    def forward(self, images, labels=None):
        x = images.clone().detach().to(self.device)
        with torch.no_grad():
            target = self.features(x)
        adv = x.clone()
        if self.random_start:
            adv = (adv + torch.empty_like(adv).uniform_(-self.eps, self.eps)).clamp(0, 1)
        for _ in range(self.steps):
            adv.requires_grad_(True)
            loss = F.mse_loss(self.features(adv), target, reduction="sum")
            grad, = torch.autograd.grad(loss, adv)
            adv = adv.detach() + self.step * grad.sign()
            adv = (x + (adv - x).clamp(-self.eps, self.eps)).clamp(0, 1)
        return adv.detach()


@register("ssp")
def ssp(model, eps: float, step: float, steps: int, network: str = "victim", weights: str | None = None,
        random_start: bool = True):
    """SSP, Linf, label-free (Naseer et al. 2020): maximise the feature distortion of ``network``
    (``victim``: its penultimate features, default; ``vgg16``: VGG16 to relu3_3 from a local
    ``weights`` file) within ``eps``, ``steps`` signed steps of ``step``, ``random_start`` (True)."""
    if network == "victim":
        features = penultimate(model)
    elif network == "vgg16":
        if not weights:
            raise ValueError("ssp network vgg16 needs a local 'weights' file (never downloaded)")
        vgg = vgg16_relu3_3(weights).to(next(model.parameters()).device)
        features = vgg
    else:
        raise ValueError(f"ssp network must be 'victim' or 'vgg16', got {network!r}")
    return SSP(model, features, eps=eps, step=step, steps=steps, random_start=random_start)
