"""Self-supervised tasks on the frozen victim's features (stage ``train_ssl``), the objectives of
the test-time reversal defence (``advrecover.defences.reversal``; Mao et al. 2021, and the
multi-task form of Lawhon and Ducrest's paper).

``params.yaml`` names tasks under ``ssl.tasks`` (a ``method`` and its parameters); :func:`build`
turns one into a :class:`Task`: a small trainable head with ``loss(features, x)``, its
self-supervised loss on a batch ``x`` in [0, 1], where ``features`` maps images to the victim's
penultimate features (frozen). No task reads a label: its targets are made from the images
(augmented views, rotations, a masked centre). Heads are saved with the entry that rebuilds them
and read back with ``weights_only=True``. To add a task, add a module here with a builder decorated
by ``register`` and an entry in ``params.yaml``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..io import atomic_path, load_checkpoint
from ..models.victim import load_weights
from ..registry import Registry, load_modules

REGISTRY = Registry("self-supervised task", context=("dim", "image_size"))
register = REGISTRY.register


class Task(nn.Module):
    """A head on features of size ``dim``; :meth:`loss` is its self-supervised loss on a batch."""

    def loss(self, features, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def check(entries: dict, where: str = "ssl.tasks") -> None:
    """Fail before any work on an unknown method, an unknown parameter or a missing one."""
    REGISTRY.check(entries, where)


def build(spec: dict, dim: int, image_size: int) -> Task:
    """The untrained head of one ``ssl.tasks`` entry for features of size ``dim``."""
    return REGISTRY.build(spec, dim, image_size)


def save_head(path: str | Path, spec: dict, head: Task, dim: int, image_size: int) -> None:
    """Write the head with what rebuilds it (read back by :func:`load_head`)."""
    with atomic_path(path) as tmp:
        torch.save({"spec": dict(spec), "dim": dim, "image_size": image_size,
                    "head": {k: v.cpu() for k, v in head.state_dict().items()}}, tmp)


def load_head(path: str | Path, dim: int) -> Task:
    """The trained head written by :func:`save_head`, in eval mode and frozen; ``dim`` is the size
    of the features it will be given (a head trained on another classifier's features is refused)."""
    state = load_checkpoint(path, "self-supervised head")
    if not {"spec", "dim", "image_size", "head"} <= set(state):
        raise ValueError(f"self-supervised head: {path} was not written by the train_ssl stage")
    if state["dim"] != dim:
        raise ValueError(f"self-supervised head: {path} was trained on {state['dim']}-d features, the victim "
                         f"gives {dim}-d ones; re-run train_ssl for this victim")
    head = load_weights(build(state["spec"], state["dim"], state["image_size"]), state["head"], path,
                        "self-supervised head")
    return head.eval().requires_grad_(False)


load_modules(__name__, __path__, REGISTRY)
