"""Gradient routes through a defence: how the attacker differentiates ``victim(recover(x))``.

``full``: the exact gradient end to end (defences declared ``differentiable``). ``bpda``: the
forward pass of the defence with the identity as its backward pass (Athalye, Carlini and Wagner
2018, Backward Pass Differentiable Approximation), for every defence. ``bpda_surrogate``: the
backward pass of the defence's own differentiable approximation (``Defence.surrogate``), for
defences that declare one. Randomness is handled by the attack (EOT), not the route.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import inference


class _BPDA(torch.autograd.Function):
    """Forward: ``recover(x)`` (no graph). Backward: the vector-Jacobian product of ``surrogate`` at x."""

    @staticmethod
    def forward(ctx, x, recover, surrogate):
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        with torch.no_grad():
            return recover(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        if ctx.surrogate is None:
            return grad.contiguous(), None, None
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (gx,) = torch.autograd.grad(ctx.surrogate(x), x, grad)
        return gx, None, None


class _UnitClamp(torch.autograd.Function):
    """Clamp to [0, 1] with the identity as its gradient. torch's clamp passes no gradient at the
    bounds themselves, so every saturated pixel (common in images stored as uint8) would be
    masked from the attacker: a defence would look stronger than it is."""

    @staticmethod
    def forward(ctx, x):
        return x.clamp(0, 1)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()  # the layout of the attack's own tensors (torchattacks .view()s it)


class Defended(nn.Module):
    """``victim(defence.recover(x))`` with the gradient of ``route``: the model the attacks see."""

    def __init__(self, victim: nn.Module, defence: nn.Module, route: str = "full"):
        super().__init__()
        if route not in ROUTES:
            raise ValueError(f"unknown gradient route {route!r}; known: {ROUTES}")
        self.victim, self.defence, self.route = victim, defence, route
        # eval mode from the start: torchattacks restores the mode it found after every attack,
        # and a module left in training mode would put the victim's BatchNorm layers on batch
        # statistics (and update their running means) for every later call
        self.eval()

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        if self.route == "full":
            return self.defence.recover(x)
        surrogate = self.defence.surrogate if self.route == "bpda_surrogate" else None
        return _BPDA.apply(x, self.defence.recover, surrogate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return inference.logits(self.victim, _UnitClamp.apply(self.purify(x)))


ROUTES = ("full", "bpda", "bpda_surrogate")


def routes_for(differentiable: bool, surrogate: bool) -> list[str]:
    """The routes that apply to a defence with these declared traits."""
    return [r for r, applies in zip(ROUTES, (differentiable, True, surrogate)) if applies]
