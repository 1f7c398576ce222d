"""A small trained victim and correctly classified images to attack."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from advrecover.data.builtin import ShapesSource
from advrecover.models.resnet import ResNet
from advrecover.data.tensors import to_tensor
from advrecover.stages.victim import train


@pytest.fixture(scope="session")
def victim_and_images(tmp_path_factory):
    """(model, x, y): a ResNet trained for a few seconds on 16-pixel flat shapes, and 48 held-out
    images it classifies correctly."""
    torch.manual_seed(0)
    src = ShapesSource(0, 16)
    data = [src.load(i, "flat") for i in range(1000)]
    images, labels = np.stack([d[0] for d in data]), np.array([d[1] for d in data])
    model = ResNet(10, [16, 32], [1, 1], stem_stride=1)
    cfg = {"epochs": 8, "batch_size": 64, "lr": 0.1, "weight_decay": 5e-4, "augment": False}
    work = Path(tmp_path_factory.mktemp("victim"))
    train(model, images[:800], labels[:800], cfg, 0, torch.device("cpu"), work / "h.csv", work / "v.ckpt",
          progress=False)
    model.eval()
    x, y = to_tensor(images[800:]), torch.from_numpy(labels[800:])
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    assert correct.float().mean() > 0.8, "the fixture victim should classify most held-out shapes"
    return model, x[correct][:48], y[correct][:48]
