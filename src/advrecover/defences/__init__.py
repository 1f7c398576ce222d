"""Defences: every one is a module with ``recover(x) -> x`` (a batch in [0, 1], same shape out).

``params.yaml`` names defences under ``evaluate.defences`` (a method plus its parameters);
:func:`build` turns one into a :class:`Defence`. Registration declares what the adaptive
attacks need (``advrecover.adaptive``): ``differentiable`` (the exact gradient route applies),
``random`` (attacks average gradients over its randomness: EOT), and optionally ``surrogate``
(the defence implements :meth:`Defence.surrogate`, a differentiable approximation for BPDA).
A method registered with ``trained_on_attack`` needs the name of the attack set its model was
trained on (the seen/unseen protocols choose it). A defence may bring its own classifier
(:attr:`Defence.classifier`, e.g. an adversarially trained victim); the victim is used otherwise.
A builder names the context arguments it uses, of ``(models_dir, train_set, victim)``: where the
trained models are, the training set of a per-attack model, and the victim it protects (the
reversal works on its features); the registry passes those by name. To add a defence, add a module here with a builder decorated by ``register``
(``advrecover.registry``), and an entry in ``params.yaml``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .. import inference
from ..registry import Registry, load_modules

REGISTRY = Registry("defence", context=("models_dir", "train_set", "victim"), required_traits=("differentiable", "random"))
register = REGISTRY.register  # optional traits: trained_on_attack, surrogate


class Defence(nn.Module):
    """``recover(x) -> x`` on a batch in [0, 1]; ``classifier`` replaces the victim when set."""

    def __init__(self):
        super().__init__()
        self.classifier: nn.Module | None = None

    def recover(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        """A differentiable approximation of :meth:`recover` (BPDA), for defences registered with
        ``surrogate=True``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.recover(x)


def check(defences: dict, where: str = "evaluate.defences") -> None:
    """Fail before any work on an unknown method, an unknown parameter or a missing one."""
    REGISTRY.check(defences, where)


def trained_on_attack(spec: dict) -> bool:
    return REGISTRY.trait(spec["method"], "trained_on_attack", False)


def adaptive_needs(spec: dict) -> dict:
    """What the adaptive attacks need of this defence: ``differentiable``, ``random``, ``surrogate``."""
    return {t: REGISTRY.trait(spec["method"], t, False) for t in ("differentiable", "random", "surrogate")}


def classifier(defence: Defence, victim: nn.Module, device=None) -> nn.Module:
    """The classifier that answers behind ``defence``: the victim, or its own (adversarial
    training), prepared for ``device`` as the victim was (:func:`advrecover.inference.prepare`)."""
    if defence.classifier is None:
        return victim
    return defence.classifier if device is None else inference.prepare(defence.classifier, device)


def build(spec: dict, models_dir: str | Path, train_set: str | None = None,
          victim: nn.Module | None = None) -> Defence:
    """The defence of one params entry; ``train_set`` picks the model of a per-attack defence; ``victim``
    is the classifier it protects (a defence that works on its features, the reversal, needs it)."""
    return REGISTRY.build(spec, Path(models_dir), train_set, victim).eval()


load_modules(__name__, __path__, REGISTRY)
