"""Build the victim classifier named by the ``victim`` params: our ResNet or a torchvision model.

Every victim takes images in [0, 1] and returns logits over the label space of the pools
(normalisation inside). A torchvision ImageNet model evaluated on ImageNet-R is restricted to
the 200 ImageNet classes that ImageNet-R covers, the protocol of Hendrycks et al. (2021).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..io import load_checkpoint
from .resnet import Normalize, ResNet

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class VictimConfig:
    """The ``victim`` params. ``mode`` train | checkpoint | torchvision. The ResNet (train,
    checkpoint): channels ``widths`` and residual ``blocks`` per stage, ``stem_stride``; training:
    ``epochs``, ``batch_size``, peak ``lr`` of SGD with one-cycle schedule, ``weight_decay``,
    ``augment`` (none | crop | crop_flip: stages.victim.augmenter); ``eval_batch_size``. ``checkpoint``: its state dict (mode
    checkpoint). ``torchvision_arch``, local ``torchvision_weights`` and the ``imagenet_classes``
    file (mode torchvision)."""

    mode: str
    widths: tuple[int, ...]
    blocks: tuple[int, ...]
    stem_stride: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    augment: str
    eval_batch_size: int
    checkpoint: str | None
    torchvision_arch: str
    torchvision_weights: str | None
    imagenet_classes: str | None


class ClassSubset(nn.Module):
    """Keep only the logits of ``index`` (e.g. ImageNet-R's 200 of ImageNet's 1000 classes)."""

    def __init__(self, model: nn.Module, index):
        super().__init__()
        self.model = model
        self.register_buffer("index", torch.as_tensor(index, dtype=torch.long))

    def forward(self, x):
        return self.model(x)[:, self.index]


def _wnid_index(classes_file: str, class_names) -> list[int]:
    path = Path(classes_file)
    if not path.is_file():
        raise FileNotFoundError(f"victim.imagenet_classes: file not found: {path}")
    wnids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    position = {w: i for i, w in enumerate(wnids)}
    missing = [c for c in class_names if c not in position]
    if missing:
        raise ValueError(f"victim.imagenet_classes: {len(missing)} pool classes not in {path}, e.g. {missing[:3]}")
    return [position[c] for c in class_names]


def build(cfg: VictimConfig, class_names) -> nn.Module:
    """An untrained victim for ``cfg`` over ``class_names``."""
    if cfg.mode in ("train", "checkpoint"):
        return ResNet(len(class_names), cfg.widths, cfg.blocks, cfg.stem_stride)
    import torchvision

    net = nn.Sequential(Normalize(IMAGENET_MEAN, IMAGENET_STD),
                        torchvision.models.get_model(cfg.torchvision_arch, weights=None))
    if cfg.imagenet_classes:
        return ClassSubset(net, _wnid_index(cfg.imagenet_classes, class_names))
    return net


def load_state(path: str | Path, what: str) -> dict:
    """A state dict from ``path``, refusing files that could run code (``io.load_checkpoint``)."""
    return load_checkpoint(path, what)


def load_weights(model: nn.Module, state: dict, path, what: str) -> nn.Module:
    """``model.load_state_dict(state)``, with an error naming the file when it is another architecture."""
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise ValueError(f"{what}: {path} holds weights of another architecture than the params describe "
                         f"({detail})") from exc
    return model


def load(path: str | Path, cfg: VictimConfig) -> nn.Module:
    """The victim written by the ``victim`` stage, in eval mode and frozen (its label space read from
    the state dict). Frozen because attacks and defences differentiate through it to their inputs
    only: an attack that calls ``backward()`` (torchattacks' CW, SSAH) would otherwise also compute
    and accumulate every weight gradient, which nearly doubled CW's time per step here."""
    state = load_state(path, "victim model")
    if cfg.mode in ("train", "checkpoint"):
        if "fc.weight" not in state:
            raise ValueError(f"victim model: {path} is not a state dict of the ResNet victim (no fc.weight)")
        model = ResNet(state["fc.weight"].shape[0], cfg.widths, cfg.blocks, cfg.stem_stride)
    else:
        model = build(replace(cfg, imagenet_classes=None), [])
        if "index" in state:
            model = ClassSubset(model, torch.zeros(len(state["index"]), dtype=torch.long))
    return load_weights(model, state, path, "victim model").eval().requires_grad_(False)


def save_resnet(path: str | Path, model: ResNet, widths, blocks, stem_stride: int) -> None:
    """A self-describing checkpoint of our ResNet (architecture and weights), for a second classifier
    (stage ``victim_robust``) that the defences load without the ``victim`` params."""
    from ..io import atomic_path

    architecture = {"classes": model.fc.out_features, "widths": list(widths), "blocks": list(blocks),
                    "stem_stride": stem_stride}
    with atomic_path(path) as tmp:
        torch.save({"architecture": architecture, "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}},
                   tmp)


def load_resnet(path: str | Path) -> nn.Module:
    """The ResNet written by :func:`save_resnet`, in eval mode and frozen."""
    state = load_state(path, "classifier model")
    if not {"architecture", "state_dict"} <= set(state):
        raise ValueError(f"classifier model: {path} was not written by the victim_robust stage")
    a = state["architecture"]
    model = ResNet(a["classes"], a["widths"], a["blocks"], a["stem_stride"])
    return load_weights(model, state["state_dict"], path, "classifier model").eval().requires_grad_(False)
