"""A classifier's penultimate features: what the feature-space attacks (SSAH, SSP), the purifiers'
perceptual loss and the self-supervised heads of the reversal defence read."""

from __future__ import annotations

import torch
from torch import nn

from .. import inference


def penultimate(model: nn.Module):
    """``x -> features``: the input of the model's last ``nn.Linear`` ("the classifier without its
    final layer", flattened), captured with a forward hook, so it works for our ResNet and for
    torchvision classifiers alike."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("feature attacks need a classifier whose last layer is nn.Linear")
    head, store = linears[-1], {}

    def hook(module, inputs):
        store["features"] = inputs[0].flatten(1)

    def features(x: torch.Tensor) -> torch.Tensor:
        handle = head.register_forward_pre_hook(hook)
        try:
            model(x)
        finally:
            handle.remove()
        return store.pop("features")

    return features


def victim_features(victim: nn.Module):
    """``x -> features``: :func:`penultimate` of the victim under the one layout policy of
    :mod:`advrecover.inference` (what the self-supervised heads read, in training and at test time)."""
    hook = penultimate(victim)
    return lambda x: hook(inference.as_input(x, x.device))
