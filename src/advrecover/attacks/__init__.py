"""Attacks: every method is called the same way, ``attack(images in [0, 1], labels) -> adversarial images``.

Methods are torchattacks ``Attack`` objects: torchattacks' own where it has them (wrapped,
not rewritten) and our subclasses where it does not (SSAH, SSP) or where it runs one image at
a time (batched DeepFool and JSMA). ``params.yaml`` names *instances* (a method plus its
parameters); :func:`build` turns one into an attack on a model. To add a method, add a module
here with a builder decorated by ``register`` (``advrecover.registry``) declaring its ``passes``, and an instance in
``params.yaml``.
"""

from __future__ import annotations

from ..registry import Registry, load_modules

# ``passes(features, classes, **entry)``: gradient evaluations of the attacked network per image at most
# (the cost benchmarks/scale.py charges an attack job; ``features`` = 3*H*W, ``classes`` = the victim's).
REGISTRY = Registry("attack method", context=("model",), required_traits=("passes",))
register = REGISTRY.register


def check(instances: dict, where: str = "attack.instances") -> None:
    """Fail before any work on an unknown method, an unknown parameter or a missing one."""
    REGISTRY.check(instances, where)


def label_free() -> list[str]:
    """The methods that perturb without labels (declared ``label_free=True``), as the purifiers'
    label-free training needs."""
    return sorted(m for m in REGISTRY.builders if REGISTRY.trait(m, "label_free", False))


def build(spec: dict, model):
    """The attack of one params instance (``{"method": ..., **params}``) against ``model``."""
    return REGISTRY.build(spec, model)


load_modules(__name__, __path__, REGISTRY)
