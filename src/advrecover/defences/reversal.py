"""Test-time reversal with self-supervision (Mao et al. 2021, "Adversarial attacks are reversible with
natural supervision"; the multi-task form of Lawhon and Ducrest): every input x, clean or attacked, is
moved to x + r with r = argmin L_ssl(x + r), ||r||_inf <= eps, by sign-PGD from a uniform random
start, x + r kept in [0, 1]; L_ssl is a weighted sum of the heads of stage ``train_ssl`` on the
victim's features. No label is read.

Random (the start and the contrastive views: attacked with EOT) and iterative. Its exact gradient
is the repair unrolled: when the caller differentiates through :meth:`Reversal.recover`, every
repair step is kept in the graph (``create_graph``); the sign of a step, whose derivative is zero
almost everywhere, passes the gradient of g / mean|g| instead (a straight-through estimate,
Bengio et al. 2013), so the attacker sees how the repair reacts to its perturbation. The BPDA
route (identity through the repair: the loss on f(x + r*) with r* detached, Croce et al. 2022)
applies as to every defence. The contrastive loss uses the other images of the batch as
negatives, so an image's repair depends on its batch (as in Mao et al.'s code).
"""

from __future__ import annotations

import torch

from .. import ssl
from ..models.features import victim_features
from . import Defence, register


def sign_step(g: torch.Tensor, unrolled: bool) -> torch.Tensor:
    """sign(g); when ``unrolled``, with the gradient of g / mean|g| (per image) in its backward pass."""
    if not unrolled:
        return g.sign()
    soft = g / g.abs().flatten(1).mean(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return soft + (g.sign() - soft).detach()


def reverse(objective, x: torch.Tensor, eps: float, step: float, steps: int, unrolled: bool) -> torch.Tensor:
    """x + r after ``steps`` sign-PGD steps of size ``step`` on ``objective`` (lower is better) from r
    uniform in the ``eps`` ball, projected into it and into [0, 1] after every step; differentiable
    to x when ``unrolled``."""
    r = (x + (torch.rand_like(x) * 2 - 1) * eps).clamp(0, 1) - x
    for _ in range(steps):
        if not unrolled:
            r = r.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(objective(x + r), r, create_graph=unrolled)
        r = (r - step * sign_step(g, unrolled)).clamp(-eps, eps)
        r = (x + r).clamp(0, 1) - x
    return x + r if unrolled else (x + r).detach()


class Reversal(Defence):
    """Mao et al. (2021) / Lawhon and Ducrest: x -> x + r*, r* minimising the weighted heads' losses in the
    Linf ball ``eps``; arguments in :func:`build` (eps 16/255, step 2/255, 40 steps)."""

    def __init__(self, features, heads: dict, weights: dict, eps: float, step: float, steps: int):
        super().__init__()
        self.features, self.heads, self.weights = features, torch.nn.ModuleDict(heads), weights
        self.eps, self.step, self.steps = eps, step, steps

    def objective(self, x: torch.Tensor) -> torch.Tensor:
        """The weighted self-supervised loss of the batch ``x``."""
        return sum(self.weights[name] * head.loss(self.features, x) for name, head in self.heads.items())

    def recover(self, x):
        unrolled = torch.is_grad_enabled() and x.requires_grad
        with torch.enable_grad():
            return reverse(self.objective, x, self.eps, self.step, self.steps, unrolled)


@register("reversal", differentiable=True, random=True)
def build(models_dir, victim, tasks: dict, eps: float = 16 / 255, step: float = 2 / 255,
          steps: int = 40):
    """Self-supervised reversal (Mao et al. 2021; multi-task: Lawhon and Ducrest), Linf ball ``eps``
    (16/255) around the input: sign-PGD with ``step`` (2/255) for ``steps`` (40) on the sum over
    ``tasks`` ({head name under ssl.tasks: weight}) of each head's loss (``<models>/ssl/<name>.pt``)."""
    if victim is None:
        raise ValueError("the reversal defence needs the victim (its heads read the victim's features)")
    if not tasks or any(w <= 0 for w in tasks.values()):
        raise ValueError(f"reversal tasks must name at least one head with a positive weight, got {tasks}")
    features = victim_features(victim)
    dim = [m for m in victim.modules() if isinstance(m, torch.nn.Linear)][-1].in_features
    heads = {name: ssl.load_head(models_dir / "ssl" / f"{name}.pt", dim) for name in tasks}
    return Reversal(features, heads, dict(tasks), eps, step, steps)
