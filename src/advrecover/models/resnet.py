"""A small ResNet for 32-pixel images (He et al. 2016, CIFAR variant).

Normalisation lives inside the model as buffers, so attacks and defences see images in [0, 1]
(the torchattacks contract) and the statistics travel with the state dict.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class Normalize(nn.Module):
    """(x - mean) / std per channel, with mean and std stored in the state dict."""

    def __init__(self, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Sequential()
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.skip(x))


class ResNet(nn.Module):
    """Stem conv (``stem_stride`` 2 halves the cost at 32 pixels), then one stage per entry of
    ``widths`` (stride 2 after the first), global average pooling, linear."""

    def __init__(self, num_classes: int, widths=(32, 64, 128), blocks=(1, 1, 1), stem_stride: int = 1):
        super().__init__()
        if len(widths) != len(blocks):
            raise ValueError(f"widths {list(widths)} and blocks {list(blocks)} must have the same length")
        self.normalize = Normalize()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, stem_stride, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        layers, cin = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                layers.append(Block(cin, w, 2 if (i > 0 and j == 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def features(self, x):
        """Globally pooled penultimate features (used by feature-space attacks such as SSAH)."""
        return F.adaptive_avg_pool2d(self.layers(self.stem(self.normalize(x))), 1).flatten(1)

    def forward(self, x):
        return self.fc(self.features(x))
