"""Adaptive attacks: attacks on the defended model ``victim(defence.recover(x))`` itself.

A transfer figure (images made against the bare victim, then handed to the defence) says
little about a purification defence: Athalye, Carlini and Wagner (2018) broke most of them with
BPDA and EOT, and Croce et al. (2022) found none of nine test-time defences robust once attacked
adaptively. Each method here wraps a torchattacks attack (APGD-CE, APGD-DLR of Croce and Hein
(2020); PGD and its EOT form); :mod:`.routes` decides which gradient reaches it. ``params.yaml``
names instances under ``adaptive.attacks``; builders take the context ``(model, norm, eps,
eot_iter)`` from the stage and their own parameters from the instance.
"""

from __future__ import annotations

from ..registry import Registry, load_modules

# ``passes(**entry)``: gradient evaluations per image and EOT sample (what benchmarks/scale.py charges)
REGISTRY = Registry("adaptive attack", context=("model", "norm", "eps", "eot_iter"), required_traits=("passes",))
register = REGISTRY.register


def check(instances: dict, where: str = "adaptive.attacks") -> None:
    """Fail before any work on an unknown method, an unknown parameter or a missing one."""
    REGISTRY.check(instances, where)


def build(spec: dict, model, norm: str, eps: float, eot_iter: int = 1):
    """The attack of one ``adaptive.attacks`` instance against ``model`` in the ``norm`` ball of ``eps``."""
    return REGISTRY.build(spec, model, norm, eps, eot_iter)


load_modules(__name__, __path__, REGISTRY)
