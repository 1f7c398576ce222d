"""The adaptive attacks: torchattacks' APGD, APGD-T, PGD and Square, plus a PGD that also evades
detection.

A random defence is attacked on every clean image: torchattacks' APGD and Square leave out the
images their first forward pass misclassifies, which under a random defence is one draw's answer,
so each method declares ``every_image(atk, x, y)``, the form that attacks all of them and returns,
per image: APGD the best-loss iterate (the loss of the step's last EOT sample), APGD-T the first
target's iterate that fooled its draw (else the last target's best-loss iterate), Square the
query of lowest margin, PGD its last iterate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchattacks
from torchattacks.attack import Attack

from . import register


@register("apgd", passes=lambda steps, n_restarts, **entry: steps * n_restarts,
          every_image=lambda atk, x, y: atk.perturb(x, y, best_loss=True)[1])
def apgd(model, norm, eps, eot_iter, loss: str = "ce", steps: int = 50, n_restarts: int = 1, seed: int = 0):
    """APGD (Croce and Hein 2020), Linf or L2: step-size-free PGD with momentum. Arguments:
    ``loss`` ce | dlr (ce), ``steps`` (50), ``n_restarts`` (1), ``seed`` (0); ``eot_iter`` gradient
    samples per step for a random defence (Athalye et al.'s EOT)."""
    if loss not in ("ce", "dlr"):
        raise ValueError(f"apgd loss must be 'ce' or 'dlr', got {loss!r}")
    return torchattacks.APGD(model, norm=norm, eps=eps, steps=steps, n_restarts=n_restarts, seed=seed, loss=loss,
                             eot_iter=eot_iter)


def _apgdt_every_image(atk, x, y):
    adv, fooled = None, torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for target in range(2, atk.n_target_classes + 2):
        atk.target_class = target
        best, acc, _, best_adv = atk.attack_single_run(x, y)
        new = ~acc.bool() & ~fooled
        adv = best.clone() if adv is None else torch.where(fooled.view(-1, 1, 1, 1), adv, best)
        adv[new] = best_adv[new]
        fooled |= new
    return adv


@register("apgdt", passes=lambda steps, n_restarts, n_target_classes, **entry:
          steps * n_restarts * n_target_classes, every_image=_apgdt_every_image)
def apgdt(model, norm, eps, eot_iter, steps: int = 50, n_restarts: int = 1, n_target_classes: int = 9, seed: int = 0):
    """APGD-T (Croce and Hein 2020): APGD on the targeted DLR loss against each of the
    ``n_target_classes`` (9) highest other classes in turn, Linf or L2, as in AutoAttack.
    Arguments: ``steps`` (50), ``n_restarts`` (1) per target, ``seed`` (0); ``eot_iter`` as APGD."""
    return torchattacks.APGDT(model, norm=norm, eps=eps, steps=steps, n_restarts=n_restarts, seed=seed,
                              eot_iter=eot_iter, n_classes=n_target_classes + 1)


def _square_every_image(atk, x, y):
    atk.init_hyperparam(x)
    return atk.attack_single_run(x, y)[1]


@register("square", passes=lambda n_queries, n_restarts, **entry: n_queries * n_restarts,
          gradient_free=True, every_image=_square_every_image)
def square(model, norm, eps, eot_iter, n_queries: int = 1000, n_restarts: int = 1, p_init: float = 0.8,
           seed: int = 0):
    """Square Attack (Andriushchenko et al. 2020): score-based random search over square-shaped
    updates of the margin loss, Linf or L2; it needs no gradient, so gradient masking cannot stop
    it. Arguments: ``n_queries`` (1000) forward passes per image, ``n_restarts`` (1), ``p_init``
    (0.8) the initial share of pixels changed, ``seed`` (0). ``eot_iter`` is ignored (it queries
    the defence's real forward pass)."""
    return torchattacks.Square(model, norm=norm, eps=eps, n_queries=n_queries, n_restarts=n_restarts,
                               p_init=p_init, loss="margin", seed=seed)


@register("pgd", passes=lambda steps, **entry: steps)
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


def every_image(method: str):
    """``every_image(atk, x, y)`` of a method: the form of it that attacks every image (for random
    defences); a method whose torchattacks form already does is called as it is."""
    from . import REGISTRY

    return REGISTRY.trait(method, "every_image", lambda atk, x, y: atk(x, y))


class DetectionAwarePGD(Attack):
    """Linf/L2 PGD on CE(f(x), y) - ``weight`` x max(0, score(x) / threshold - 1): it misleads the
    defended victim while keeping the detection score (the distance between the input and its
    recovery) under the detector's threshold. ``score`` maps a batch to per-image scores, through a
    route of its own (the exact or surrogate one: BPDA's identity makes the score's gradient zero);
    ``eot_iter`` gradient samples per step for a random defence."""

    def __init__(self, model, score, threshold: float, norm: str, eps: float, steps: int, alpha: float,
                 weight: float, eot_iter: int = 1):
        super().__init__("DetectionAwarePGD", model)
        self.score, self.threshold, self.norm = score, max(threshold, 1e-12), norm
        self.eps, self.steps, self.alpha, self.weight, self.eot_iter = eps, steps, alpha, weight, eot_iter

    def forward(self, images, labels):
        x0 = images.clone().detach()
        adv = x0.clone()
        for _ in range(self.steps):
            adv.requires_grad_(True)
            grad = torch.zeros_like(adv)
            for _ in range(self.eot_iter):
                over = (self.score(adv) / self.threshold - 1).clamp_min(0)
                loss = F.cross_entropy(self.get_logits(adv), labels, reduction="sum") - self.weight * over.sum()
                grad += torch.autograd.grad(loss, adv)[0]
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
