"""Bit-depth reduction (Xu, Evans and Qi 2018, "Feature Squeezing", Sec. 3.1): every channel value
rounded to one of ``2**bits`` levels. Rounding has a zero gradient almost everywhere, so the defence
declares a BPDA surrogate, the identity (Athalye, Carlini and Wagner 2018, Sec. 4.1, who broke this
defence with it); it is deterministic."""

from __future__ import annotations

import torch

from advrecover.defences import Defence, register


class BitDepth(Defence):
    """``round(x * (2**bits - 1)) / (2**bits - 1)`` per channel value, for images in [0, 1]."""

    def __init__(self, bits: int):
        super().__init__()
        self.levels = 2 ** bits - 1

    def recover(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * self.levels) / self.levels

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        return x


@register("bit_depth", differentiable=False, random=False, surrogate=True)
def build(bits: int = 4):
    """Bit-depth reduction to ``bits`` (4; Xu et al. squeeze CIFAR-10 to 5 and MNIST to 1) per channel,
    no distance bound; BPDA surrogate: the identity."""
    if not 1 <= bits <= 7:
        raise ValueError(f"bit_depth bits must be in 1..7 (8 keeps every 8-bit image), got {bits}")
    return BitDepth(bits)
