"""The adaptive attacks: torchattacks' APGD and PGD, plus a PGD that also evades detection."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchattacks
from torchattacks.attack import Attack

from . import register


@register("apgd", passes=lambda steps=50, n_restarts=1, **entry: steps * n_restarts)
def apgd(model, norm, eps, eot_iter, loss: str = "ce", steps: int = 50, n_restarts: int = 1, seed: int = 0):
    """APGD (Croce and Hein 2020), Linf or L2: step-size-free PGD with momentum. Arguments:
    ``loss`` ce | dlr (ce), ``steps`` (50), ``n_restarts`` (1), ``seed`` (0); ``eot_iter`` gradient
    samples per step for a random defence (Athalye et al.'s EOT)."""
    if loss not in ("ce", "dlr"):
        raise ValueError(f"apgd loss must be 'ce' or 'dlr', got {loss!r}")
    return torchattacks.APGD(model, norm=norm, eps=eps, steps=steps, n_restarts=n_restarts, seed=seed, loss=loss,
                             eot_iter=eot_iter)


@register("pgd", passes=lambda steps=100, **entry: steps)
def pgd(model, norm, eps, eot_iter, steps: int = 100, step_ratio: float = 0.25, random_start: bool = True):
    """PGD (Madry et al. 2018), Linf (torchattacks' EOTPGD: ``eot_iter`` samples per step) or L2
    (torchattacks' PGDL2, deterministic defences only). Arguments: ``steps`` (100), step size
    ``step_ratio`` x eps (0.25), ``random_start`` (True)."""
    alpha = step_ratio * eps
    if norm == "Linf":
        return torchattacks.EOTPGD(model, eps=eps, alpha=alpha, steps=steps, eot_iter=eot_iter,
                                   random_start=random_start)
    if eot_iter > 1:
        raise ValueError("pgd: torchattacks has no EOT form of L2 PGD; use apgd for a random defence under L2")
    return torchattacks.PGDL2(model, eps=eps, alpha=alpha, steps=steps, random_start=random_start)


class DetectionAwarePGD(Attack):
    """Linf/L2 PGD on CE(f(x), y) - ``weight`` x max(0, score(x) / threshold - 1): it misleads the
    defended victim while keeping the detection score (the distance between the input and its
    recovery) under the detector's threshold. ``score`` maps a batch to per-image scores."""

    def __init__(self, model, score, threshold: float, norm: str, eps: float, steps: int, alpha: float,
                 weight: float):
        super().__init__("DetectionAwarePGD", model)
        self.score, self.threshold, self.norm = score, max(threshold, 1e-12), norm
        self.eps, self.steps, self.alpha, self.weight = eps, steps, alpha, weight

    def forward(self, images, labels):
        x0 = images.clone().detach()
        adv = x0.clone()
        for _ in range(self.steps):
            adv.requires_grad_(True)
            over = (self.score(adv) / self.threshold - 1).clamp_min(0)
            loss = F.cross_entropy(self.get_logits(adv), labels, reduction="sum") - self.weight * over.sum()
            grad = torch.autograd.grad(loss, adv)[0]
            adv = self._project(x0, adv.detach() + self.alpha * self._direction(grad))
        return adv.detach()

    def _direction(self, grad):
        if self.norm == "Linf":
            return grad.sign()
        return grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)

    def _project(self, x0, adv):
        delta = adv - x0
        if self.norm == "Linf":
            delta = delta.clamp(-self.eps, self.eps)
        else:
            norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            delta = delta * (self.eps / norms).clamp(max=1)
        return (x0 + delta).clamp(0, 1)
