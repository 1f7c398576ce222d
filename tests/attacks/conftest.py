"""A small victim with stored weights and correctly classified images to attack."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from advrecover.data.builtin import ShapesSource
from advrecover.data.tensors import to_tensor
from advrecover.models.resnet import ResNet

WEIGHTS = Path(__file__).resolve().parents[1] / "fixtures" / "shapes16_victim.pt"
N_TRAIN = 800  # images 0..799 trained the stored weights (tests/fixtures/make_victim.py); the rest are held out


def shapes(n: int = 1000):
    """The first ``n`` 16-pixel flat shapes of seed 0 and their labels."""
    src = ShapesSource(0, 16)
    data = [src.load(i, "flat") for i in range(n)]
    return np.stack([d[0] for d in data]), np.array([d[1] for d in data])


def architecture() -> ResNet:
    return ResNet(10, [16, 32], [1, 1], stem_stride=1)


@pytest.fixture(scope="session")
def victim_and_images():
    """(model, x, y): the ResNet of ``tests/fixtures/shapes16_victim.pt`` (trained once on 16-pixel
    flat shapes and stored, so every machine attacks the same weights) and 48 held-out images it
    classifies correctly."""
    model = architecture()
    model.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=True))
    model.eval()
    images, labels = shapes()
    x, y = to_tensor(images[N_TRAIN:]), torch.from_numpy(labels[N_TRAIN:])
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    assert correct.float().mean() > 0.8, "the fixture victim should classify most held-out shapes"
    return model, x[correct][:48], y[correct][:48]
