"""DeepFool (Moosavi-Dezfooli et al., CVPR 2016), batched.

The same iteration as ``torchattacks.DeepFool``: at each step every still-correct image moves
by (1 + overshoot) times the minimal linearised step to the nearest class boundary
(Algorithm 2 of the paper, |f_k| w_k / ||w_k||^2), clipped to [0, 1], and stops once its
prediction has left the true label. torchattacks computes the Jacobian one image at a time;
here one forward pass and one backward pass per candidate class cover the whole batch. As in
the authors' reference code (its ``num_classes``), the boundary is sought among the
``candidates`` classes of highest logit (all classes when ``candidates`` >= their number).
"""

from __future__ import annotations

import torch
import torchattacks
from torchattacks.attack import Attack

from . import register


class BatchedDeepFool(Attack):
    def __init__(self, model, steps: int, overshoot: float, candidates: int):
        super().__init__("BatchedDeepFool", model)
        self.steps, self.overshoot, self.candidates = steps, overshoot, candidates
        self.supported_mode = ["default"]

    def forward(self, images, labels):
        return self.forward_return_target_labels(images, labels)[0]

    def forward_return_target_labels(self, images, labels):
        """Adversarial images and the class each one was sent to (torchattacks' API)."""
        adv = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)
        target = labels.clone()
        active = torch.ones(len(adv), dtype=torch.bool, device=adv.device)
        for _ in range(self.steps):
            idx = active.nonzero().squeeze(1)
            if len(idx) == 0:
                break
            x = adv[idx].clone().requires_grad_(True)
            logits = self.get_logits(x)
            pred, y = logits.argmax(1), labels[idx]
            done = pred != y
            target[idx[done]] = pred[done]
            active[idx[done]] = False
            if done.all():
                break
            c = min(self.candidates, logits.shape[1])
            cls = logits.detach().topk(c, 1).indices  # (B, c); holds y for every still-correct image
            grads = torch.stack([torch.autograd.grad(logits.gather(1, cls[:, j:j + 1]).sum(), x,
                                                     retain_graph=j + 1 < c)[0] for j in range(c)], 1)
            keep = ~done
            idx, cls, grads, y, logits = idx[keep], cls[keep], grads[keep], y[keep], logits.detach()[keep]
            rows = torch.arange(len(idx), device=adv.device)
            own = (cls == y[:, None]).float().argmax(1)  # position of the true class among the candidates
            f = logits.gather(1, cls) - logits[rows, y][:, None]  # (B, c): f_k - f_y
            w = grads - grads[rows, own][:, None]  # (B, c, C, H, W)
            wnorm = w.flatten(2).norm(dim=2)
            dist = (f.abs() / wnorm).masked_fill(cls == y[:, None], float("inf"))
            k = dist.argmin(1)
            delta = (f[rows, k].abs() / wnorm[rows, k].pow(2))[:, None, None, None] * w[rows, k]
            adv[idx] = (adv[idx] + (1 + self.overshoot) * delta).clamp(0, 1)
            target[idx] = cls[rows, k]
        return adv.detach(), target


@register("deepfool")
def deepfool(model, steps: int = 50, overshoot: float = 0.02, impl: str = "batched", candidates: int = 5):
    """DeepFool, L2 (Moosavi-Dezfooli, Fawzi and Frossard 2016, Algorithm 2). Arguments: ``steps`` (50),
    ``overshoot`` (0.02), ``impl``: ``batched`` (ours, default) or ``torchattacks`` (one image at a time,
    all classes), ``candidates`` (5: classes of highest logit searched for the nearest boundary)."""
    if impl == "torchattacks":
        return torchattacks.DeepFool(model, steps=steps, overshoot=overshoot)
    if impl != "batched":
        raise ValueError(f"deepfool impl must be 'batched' or 'torchattacks', got {impl!r}")
    return BatchedDeepFool(model, steps=steps, overshoot=overshoot, candidates=candidates)
