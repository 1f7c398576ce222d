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
from torchattacks.attack import Attack

from . import register
from .features import network as feature_network


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


@register("ssp", label_free=True, passes=lambda features, classes, steps, **entry: steps)
def ssp(model, eps: float, step: float, steps: int, network: str = "victim", weights: str | None = None,
        random_start: bool = True):
    """SSP, Linf, label-free (Naseer et al. 2020): maximise the feature distortion of ``network``
    (``victim``: its penultimate features, default; ``vgg16``: VGG16 to relu3_3 from a local
    ``weights`` file) within ``eps``, ``steps`` signed steps of ``step``, ``random_start`` (True)."""
    features = feature_network(network, weights, model)
    return SSP(model, features, eps=eps, step=step, steps=steps, random_start=random_start)
