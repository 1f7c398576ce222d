"""Victim architectures: the ResNet contract and the ImageNet-class restriction."""

from __future__ import annotations

import pytest
import torch

from advrecover.models import victim as victims
from advrecover.models.resnet import ResNet
from advrecover.config import section
from helpers import tiny_params


def config(**overrides) -> victims.VictimConfig:
    return section(victims.VictimConfig, {**tiny_params()["victim"], **overrides})


def test_resnet_takes_unit_range_images_and_exposes_features():
    model = ResNet(10, [8, 16, 32], [1, 2, 1], stem_stride=2).eval()
    x = torch.rand(3, 3, 32, 32)
    assert model(x).shape == (3, 10) and model.features(x).shape == (3, 32)


def test_resnet_rejects_mismatched_widths_and_blocks():
    with pytest.raises(ValueError, match="same length"):
        ResNet(10, [8, 16], [1])


def test_imagenet_classes_must_cover_the_pool_classes(tmp_path):
    (tmp_path / "classes.txt").write_text("n00000001\nn00000002\n")
    cfg = config(mode="torchvision", torchvision_arch="resnet18", imagenet_classes=str(tmp_path / "classes.txt"))
    assert victims.build(cfg, ["n00000002"]).index.tolist() == [1]
    with pytest.raises(ValueError, match="n00000003"):
        victims.build(cfg, ["n00000003"])


def test_a_loaded_victim_is_frozen_but_differentiable_to_its_input(tmp_path):
    from advrecover import attacks

    cfg = config(mode="train", widths=[8, 16, 32], blocks=[1, 1, 1], stem_stride=2)
    torch.save(ResNet(10, cfg.widths, cfg.blocks, cfg.stem_stride).state_dict(), tmp_path / "victim.pt")
    model = victims.load(tmp_path / "victim.pt", cfg)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    x, y = torch.rand(4, 3, 32, 32), torch.arange(4)
    attacks.build({"method": "cw", "c": 1, "kappa": 0, "steps": 3, "lr": 0.01}, model)(x, y)
    assert all(p.grad is None for p in model.parameters())  # CW's backward() computed no weight gradient
    xr = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(model(xr), y).backward()
    assert xr.grad is not None and xr.grad.abs().sum() > 0
