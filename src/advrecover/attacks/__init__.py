"""Attacks: every method is called the same way, ``attack(images in [0, 1], labels) -> adversarial images``.

Methods are torchattacks ``Attack`` objects: torchattacks' own where it has them (wrapped,
not rewritten) and our subclasses where it does not (SSAH, SSP) or where it runs one image at
a time (batched DeepFool and JSMA). ``params.yaml`` names *instances* (a method plus its
parameters); :func:`build` turns one into an attack on a model. To add a method, add a module
here with a builder decorated by :func:`register`, and an instance in ``params.yaml``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

REGISTRY: dict = {}


def register(name: str):
    """Register ``builder(model, **params) -> torchattacks.Attack`` under the method ``name``."""

    def deco(builder):
        REGISTRY[name] = builder
        return builder

    return deco


def _load_all() -> None:
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


def check(instances: dict, where: str = "attack.instances") -> None:
    """Fail before any work on an unknown method or a parameter the method does not take."""
    for name, spec in instances.items():
        method = spec.get("method")
        if method not in REGISTRY:
            raise ValueError(f"{where}.{name}.method: unknown attack method {method!r}; known: {sorted(REGISTRY)}")
        sig = inspect.signature(REGISTRY[method])
        accepted = [p for p in sig.parameters if p != "model"]
        for key in spec:
            if key != "method" and key not in accepted:
                raise ValueError(f"{where}.{name}.{key}: {method} takes no parameter {key!r}; it takes {accepted}")
        missing = [p for p, v in sig.parameters.items()
                   if p != "model" and v.default is inspect.Parameter.empty and p not in spec]
        if missing:
            raise ValueError(f"{where}.{name}: {method} needs {missing}")


def build(spec: dict, model):
    """The attack of one params instance (``{"method": ..., **params}``) against ``model``."""
    params = {k: v for k, v in spec.items() if k != "method"}
    return REGISTRY[spec["method"]](model, **params)


_load_all()
