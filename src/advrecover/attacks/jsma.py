"""Jacobian-based Saliency Map Attack (Papernot et al., EuroS&P 2016), batched.

Follows ``torchattacks.JSMA``: a target class (by default the next label, ``(y + 1) mod K``),
two features changed by ``theta`` per iteration, at most ``gamma`` of the features in all,
features saturated by ``theta`` leave the search domain, stop when the target is reached.
The pairwise saliency map (eq. 10: alpha * |beta| over pairs with alpha > 0, beta < 0) is
searched among the ``candidates`` features of highest single-feature saliency instead of all
F^2 pairs, which keeps memory at B * candidates^2 instead of F^2 per image (torchattacks
needs F^2, 9.4M entries per 32-pixel image) and works for any number of classes.
"""

from __future__ import annotations

import math

import torch
import torchattacks
from torchattacks.attack import Attack

from . import register
from .jacobian import logits_and_jacobian


class BatchedJSMA(Attack):
    def __init__(self, model, theta: float, gamma: float, candidates: int, target: str):
        super().__init__("BatchedJSMA", model)
        self.theta, self.gamma, self.candidates, self.target = theta, gamma, candidates, target
        self.supported_mode = ["default"]

    def targets(self, images, labels, num_classes: int):
        if self.target == "next":
            return (labels + 1) % num_classes
        with torch.no_grad():
            logits = self.get_logits(images)
        logits[torch.arange(len(labels)), labels] = float("inf")
        return logits.argmin(1)  # least likely

    def forward(self, images, labels):
        x = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)
        b, shape = len(x), x.shape
        nf = x[0].numel()
        increasing = self.theta > 0
        domain = (x < 0.99 if increasing else x > 0.01).reshape(b, nf)
        max_iters = int(math.ceil(nf * self.gamma / 2.0))
        rows = torch.arange(b, device=x.device)
        target = None
        for _ in range(max_iters):
            logits, jac = logits_and_jacobian(self.get_logits, x)
            if target is None:
                target = self.targets(x, labels, logits.shape[1])
            active = (logits.argmax(1) != target) & (domain.sum(1) >= 2)
            if not active.any():
                break
            jac = jac.reshape(b, logits.shape[1], nf)
            a = jac[rows, target]  # (B, F) derivative of the target logit
            o = jac.sum(1) - a  # (B, F) derivative of the other logits
            sign = 1.0 if increasing else -1.0
            # candidates: the features that most raise the target and lower the others on their own
            score = torch.where(domain, sign * (a - o), torch.full_like(a, -torch.inf))
            k = min(self.candidates, nf)
            cand = score.topk(k, dim=1).indices  # (B, k)
            ca, co = a.gather(1, cand), o.gather(1, cand)
            cd = domain.gather(1, cand)
            alpha = ca[:, :, None] + ca[:, None, :]
            beta = co[:, :, None] + co[:, None, :]
            ok = (alpha * sign > 0) & (beta * sign < 0) & cd[:, :, None] & cd[:, None, :]
            ok &= ~torch.eye(k, dtype=torch.bool, device=x.device)
            sal = torch.where(ok, alpha.abs() * beta.abs(), torch.full_like(alpha, -1.0))
            best = sal.view(b, -1).argmax(1)
            p, q = cand[rows, best // k], cand[rows, best % k]
            found = sal.view(b, -1).max(1).values > 0
            step = active & found
            if not step.any():
                break
            flat = x.reshape(b, nf).clone()
            r = rows[step]
            flat[r, p[step]] += self.theta
            flat[r, q[step]] += self.theta
            x = flat.clamp(0, 1).reshape(shape)
            domain[r, p[step]] = False
            domain[r, q[step]] = False
        return x.detach()


class TorchattacksJSMA(torchattacks.JSMA):
    """torchattacks' JSMA, given contiguous images (its ``view`` calls fail on channels-last ones)."""

    def forward(self, images, labels):
        return super().forward(images.contiguous(), labels)


@register("jsma", passes=lambda features, classes, gamma, **entry: math.ceil(features * gamma / 2) * classes)
def jsma(model, gamma: float, theta: float = 1.0, impl: str = "batched", candidates: int = 64, target: str = "next"):
    """JSMA, L0 (Papernot et al. 2016, the saliency map of eq. (8)-(9) over feature pairs). Arguments:
    ``gamma`` (share of features changed at most), ``theta`` (1.0: the change per feature), ``impl``:
    ``batched`` (ours, default) or ``torchattacks`` (one image at a time, 10 classes, F^2 memory),
    ``candidates`` (64: features of highest single saliency paired), ``target`` (``next``: (y + 1) mod K,
    or ``least_likely``)."""
    if impl == "torchattacks":
        return TorchattacksJSMA(model, theta=theta, gamma=gamma)
    if impl != "batched":
        raise ValueError(f"jsma impl must be 'batched' or 'torchattacks', got {impl!r}")
    if target not in ("next", "least_likely"):
        raise ValueError(f"jsma target must be 'next' or 'least_likely', got {target!r}")
    return BatchedJSMA(model, theta=theta, gamma=gamma, candidates=candidates, target=target)
