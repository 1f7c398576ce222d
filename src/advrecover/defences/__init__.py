"""Defences: every one is a module with ``recover(x) -> x`` (a batch in [0, 1], same shape out).

``params.yaml`` names defences under ``evaluate.defences`` (a method plus its parameters);
:func:`build` turns one into a :class:`Defence`. A method registered with ``trained_on_attack``
needs the name of the attack set its model was trained on (the seen/unseen protocols choose
it); others ignore it. To add a defence, add a module here with a builder decorated by
:func:`register`, and an entry in ``params.yaml``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import torch
from torch import nn

REGISTRY: dict = {}


class Defence(nn.Module):
    """``recover(x) -> x``. ``differentiable`` tells adaptive attacks whether exact gradients
    flow through ``recover`` (otherwise they need BPDA)."""

    differentiable = True

    def recover(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.recover(x)


def register(name: str, trained_on_attack: bool = False):
    """Register ``builder(models_dir, train_set, **params) -> Defence`` under the method ``name``."""

    def deco(builder):
        builder.trained_on_attack = trained_on_attack
        REGISTRY[name] = builder
        return builder

    return deco


def check(defences: dict, where: str = "evaluate.defences") -> None:
    """Fail before any work on an unknown method or a parameter the method does not take."""
    for name, spec in defences.items():
        method = spec.get("method")
        if method not in REGISTRY:
            raise ValueError(f"{where}.{name}.method: unknown defence {method!r}; known: {sorted(REGISTRY)}")
        accepted = list(inspect.signature(REGISTRY[method]).parameters)[2:]
        for key in spec:
            if key != "method" and key not in accepted:
                raise ValueError(f"{where}.{name}.{key}: {method} takes no parameter {key!r}; it takes {accepted}")


def trained_on_attack(spec: dict) -> bool:
    return REGISTRY[spec["method"]].trained_on_attack


def build(spec: dict, models_dir: str | Path, train_set: str | None = None) -> Defence:
    """The defence of one params entry; ``train_set`` picks the model of a per-attack defence."""
    params = {k: v for k, v in spec.items() if k != "method"}
    return REGISTRY[spec["method"]](Path(models_dir), train_set, **params).eval()


def _load_all() -> None:
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


_load_all()
