"""A small CNN with the RobustBench contract: images in [0, 1] in, logits out (it normalises inside)."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Three 3x3 convolutions (``width``, 2x``width``, 4x``width`` channels, 32 default), each with
    batch norm, ReLU and 2x2 max pooling, then global average pooling and a linear layer to
    ``num_classes`` (10) logits; any image size of 8 pixels or more."""

    def __init__(self, num_classes: int = 10, width: int = 32):
        super().__init__()
        layers, channels = [], 3
        for out in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(),
                       nn.MaxPool2d(2)]
            channels = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(2 * x - 1))
