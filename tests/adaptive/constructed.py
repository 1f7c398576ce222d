"""Defences built to fail in known ways: each one tests that the adaptive evaluation notices."""

from __future__ import annotations

import torch

from advrecover.defences import Defence


class Identity(Defence):
    def recover(self, x):
        return x


class Quantise(Defence):
    """Rounds every pixel to ``levels`` grey levels: the exact gradient is zero almost everywhere
    (gradient masking), while the identity is a perfect BPDA approximation."""

    def __init__(self, levels: int = 8):
        super().__init__()
        self.levels = levels

    def recover(self, x):
        return torch.round(x * (self.levels - 1)) / (self.levels - 1)


class _NoisyGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, sigma):
        ctx.sigma = sigma
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * (1 + ctx.sigma * torch.randn_like(grad)), None


class RandomGradient(Defence):
    """The identity forward, but each backward pass multiplies the gradient by 1 + sigma * N(0, 1)
    per pixel: one sample points almost anywhere, the average over many (EOT) points the true way."""

    def __init__(self, sigma: float = 10.0):
        super().__init__()
        self.sigma = sigma

    def recover(self, x):
        return _NoisyGradient.apply(x, self.sigma)
