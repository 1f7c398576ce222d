"""Build the victim classifier named by the ``victim`` params: our ResNet, a torchvision model, or any
``nn.Module`` named by an import path (``mode: module``, the contract of RobustBench and AutoAttack).

Every victim takes images in [0, 1] and returns logits over the label space of the pools
(normalisation inside). A torchvision ImageNet model evaluated on ImageNet-R is restricted to
the 200 ImageNet classes that ImageNet-R covers, the protocol of Hendrycks et al. (2021).
"""

from __future__ import annotations

import pkgutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from ..io import load_checkpoint
from .resnet import Normalize, ResNet

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class VictimConfig:
    """The ``victim`` params. ``mode`` train | checkpoint | torchvision | module. The ResNet (train,
    checkpoint): channels ``widths`` and residual ``blocks`` per stage, ``stem_stride``; training:
    ``epochs``, ``batch_size``, peak ``lr`` of SGD with one-cycle schedule, ``weight_decay``,
    ``augment`` (none | crop | crop_flip: stages.victim.augmenter); ``eval_batch_size``. ``checkpoint``: the
    local state dict (modes checkpoint and module). ``torchvision_arch``, local ``torchvision_weights`` and the
    ``imagenet_classes`` file (mode torchvision). ``module`` (``package.module:callable``) called with
    ``module_args`` returns the classifier (mode module)."""

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
    module: str | None = None
    module_args: dict = field(default_factory=dict)


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


def import_object(target: str, what: str = "victim.module"):
    """The object an import path ``package.module:attribute`` names (``pkgutil.resolve_name``), or an
    error naming ``what``."""
    module, sep, attribute = target.partition(":")
    if not (sep and module and attribute):
        raise ValueError(f"{what}: {target!r} is not an import path of the form 'package.module:callable'")
    try:
        return pkgutil.resolve_name(target)
    except ImportError as exc:
        raise ValueError(f"{what}: cannot import {module!r} ({exc}); is its package installed?") from exc
    except AttributeError as exc:
        raise ValueError(f"{what}: {module!r} has no attribute {attribute!r}") from exc


def module_classifier(target: str, args: dict, what: str = "victim.module") -> nn.Module:
    """``target(**args)``, which must be an ``nn.Module`` (images in [0, 1] -> logits)."""
    try:
        model = import_object(target, what)(**args)
    except TypeError as exc:
        raise ValueError(f"{what}: {target}(**{args}) failed: {exc} (victim.module_args)") from exc
    if not isinstance(model, nn.Module):
        raise ValueError(f"{what}: {target} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def build(cfg: VictimConfig, class_names) -> nn.Module:
    """An untrained victim for ``cfg`` over ``class_names``."""
    if cfg.mode in ("train", "checkpoint"):
        return ResNet(len(class_names), cfg.widths, cfg.blocks, cfg.stem_stride)
    if cfg.mode == "module":
        return module_classifier(cfg.module, cfg.module_args)
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
    if cfg.mode == "module":
        if "state_dict" not in state:
            raise ValueError(f"victim model: {path} was not written by the victim stage in mode module")
        model, state = module_classifier(cfg.module, cfg.module_args), state["state_dict"]
    elif cfg.mode in ("train", "checkpoint"):
        if "fc.weight" not in state:
            raise ValueError(f"victim model: {path} is not a state dict of the ResNet victim (no fc.weight)")
        model = ResNet(state["fc.weight"].shape[0], cfg.widths, cfg.blocks, cfg.stem_stride)
    else:
        model = build(replace(cfg, imagenet_classes=None), [])
        if "index" in state:
            model = ClassSubset(model, torch.zeros(len(state["index"]), dtype=torch.long))
    return load_weights(model, state, path, "victim model").eval().requires_grad_(False)


def save(path: str | Path, model: nn.Module, cfg: VictimConfig, code: str | None = None) -> None:
    """The victim as the stages read it (:func:`load`): its state dict; in mode module with the import
    path and ``code``, the digest of the module's source (stages.plugins), so that editing the module
    changes this file and everything downstream re-runs under DVC as under Snakemake."""
    from ..io import atomic_path

    state = {k: v.cpu() for k, v in model.state_dict().items()}
    if cfg.mode == "module":
        state = {"module": cfg.module, "module_args": dict(cfg.module_args), "code": code, "state_dict": state}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def victim_weights(path: str | Path, cfg: VictimConfig) -> dict:
    """The state dict inside the file that :func:`save` wrote."""
    state = load_state(path, "victim model")
    return state["state_dict"] if cfg.mode == "module" and "state_dict" in state else state


def save_classifier(path: str | Path, model: nn.Module, cfg: VictimConfig) -> None:
    """A self-describing checkpoint of a classifier of the victim's architecture (our ResNet or a module
    victim's), for a second classifier (stage ``victim_robust``) that the defences load without the
    ``victim`` params."""
    from ..io import atomic_path

    if cfg.mode == "module":
        architecture = {"module": cfg.module, "module_args": dict(cfg.module_args)}
    else:
        architecture = {"classes": model.fc.out_features, "widths": list(cfg.widths), "blocks": list(cfg.blocks),
                        "stem_stride": cfg.stem_stride}
    with atomic_path(path) as tmp:
        torch.save({"architecture": architecture, "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}},
                   tmp)


def load_classifier(path: str | Path) -> nn.Module:
    """The classifier written by :func:`save_classifier`, in eval mode and frozen."""
    state = load_state(path, "classifier model")
    if not {"architecture", "state_dict"} <= set(state):
        raise ValueError(f"classifier model: {path} was not written by the victim_robust stage")
    a = state["architecture"]
    if "module" in a:
        model = module_classifier(a["module"], a["module_args"], f"classifier model {path}")
    else:
        model = ResNet(a["classes"], a["widths"], a["blocks"], a["stem_stride"])
    return load_weights(model, state["state_dict"], path, "classifier model").eval().requires_grad_(False)
