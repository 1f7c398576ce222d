"""Purifiers trained without labels: a generator maps a perturbed image to its clean version, a
critic judges the result (stage ``train_purifier``).

``params.yaml`` names purifiers under ``purifiers`` (a ``method``, its parameters, and the
stage's ``train`` options); :func:`build` turns one into a :class:`Purifier`. A method supplies
the two networks and its loss terms; the stage supplies the training pairs (clean images of the
unlabelled ``cae`` pool and their label-free SSP perturbations), the feature network of the
perceptual loss and the optimisers. To add a method, add a module here with a builder
decorated by ``register`` and an entry in ``params.yaml``. The defences that deploy a trained
generator (``advrecover.defences``) read it with :func:`load_generator`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..io import atomic_path, load_checkpoint
from ..registry import Registry, load_modules

REGISTRY = Registry("purifier", context=())
register = REGISTRY.register


class Purifier(nn.Module):
    """A ``generator`` (perturbed -> clean, in [0, 1]) and a ``critic``, with the loss terms of
    their alternating updates; each ``*_terms`` returns ``{term: tensor}`` with the total under ``loss``."""

    generator: nn.Module
    critic: nn.Module

    def critic_terms(self, adv: torch.Tensor, clean: torch.Tensor, fake: torch.Tensor) -> dict:
        raise NotImplementedError

    def generator_terms(self, adv: torch.Tensor, clean: torch.Tensor, fake: torch.Tensor, features) -> dict:
        raise NotImplementedError


def perceptual(features, fake: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between the feature maps of the purified and the clean images
    (Johnson, Alahi and Fei-Fei 2016), the clean features held fixed."""
    with torch.no_grad():
        target = features(clean)
    return F.mse_loss(features(fake), target)


def relativistic(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The relativistic average GAN loss (Jolicoeur-Martineau 2019), as ESRGAN and NRP use it:
    real images should score above the mean fake, fakes below the mean real. The critic
    minimises it as written; the generator minimises it with the two arguments swapped."""
    ones, zeros = torch.ones_like(real_logits), torch.zeros_like(fake_logits)
    return 0.5 * (F.binary_cross_entropy_with_logits(real_logits - fake_logits.mean(), ones)
                  + F.binary_cross_entropy_with_logits(fake_logits - real_logits.mean(), zeros))


def check(entries: dict, where: str = "purifiers") -> None:
    """Fail before any work on an unknown method or parameter (the ``train`` options are the stage's)."""
    REGISTRY.check({k: {p: v for p, v in s.items() if p != "train"} for k, s in entries.items()}, where)


def build(spec: dict) -> Purifier:
    """The untrained purifier of one ``purifiers`` entry."""
    return REGISTRY.build({k: v for k, v in spec.items() if k != "train"})


def save_generator(path: str | Path, spec: dict, purifier: Purifier) -> None:
    """Write the generator with the entry that rebuilds it (read back with ``weights_only=True``)."""
    arguments = {k: v for k, v in spec.items() if k != "train"}
    with atomic_path(path) as tmp:
        torch.save({"spec": arguments, "generator": {k: v.cpu() for k, v in purifier.generator.state_dict().items()}},
                   tmp)


def load_generator(path: str | Path) -> nn.Module:
    """The trained generator written by :func:`save_generator`, in eval mode and frozen."""
    state = load_checkpoint(path, "purifier model")
    if not {"spec", "generator"} <= set(state):
        raise ValueError(f"purifier model: {path} was not written by the train_purifier stage")
    generator = build(state["spec"]).generator
    try:
        generator.load_state_dict(state["generator"])
    except RuntimeError as exc:
        raise ValueError(f"purifier model: {path} does not match its own architecture ({exc})") from exc
    return generator.eval().requires_grad_(False)


load_modules(__name__, __path__, REGISTRY)
