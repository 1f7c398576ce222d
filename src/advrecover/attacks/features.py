"""Feature networks for the feature-space methods: SSAH, SSP, and the perceptual losses of the purifiers
(the victim's penultimate features come from :func:`advrecover.models.features.penultimate`)."""

from __future__ import annotations

from torch import nn

from ..models.features import penultimate
from ..models.resnet import Normalize
from ..models.victim import IMAGENET_MEAN, IMAGENET_STD, load_state, load_weights


def vgg16_relu3_3(weights: str | None) -> nn.Module:
    """torchvision's VGG16 up to relu3_3 (``features[:16]``, the NRP code's choice) on ImageNet-normalised
    inputs, frozen, from a local state-dict file (never downloaded); fresh weights for ``None`` (what
    benchmarks/scale.py costs: :func:`network` refuses a missing file)."""
    import torchvision

    vgg = torchvision.models.vgg16(weights=None)
    if weights is not None:
        load_weights(vgg, load_state(weights, "vgg16 weights"), weights, "vgg16 weights")
    return nn.Sequential(Normalize(IMAGENET_MEAN, IMAGENET_STD), vgg.features[:16]).eval().requires_grad_(False)


def network(name: str, weights: str | None, victim: nn.Module):
    """The feature network ``name``: ``victim`` (its penultimate features) or ``vgg16`` (relu3_3,
    from the local ``weights`` file), on the victim's device."""
    if name == "victim":
        return penultimate(victim)
    if name == "vgg16":
        if not weights:
            raise ValueError("feature network vgg16 needs a local 'weights' file (never downloaded)")
        return vgg16_relu3_3(weights).to(next(victim.parameters()).device)
    raise ValueError(f"feature network must be 'victim' or 'vgg16', got {name!r}")
