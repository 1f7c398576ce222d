"""DeepFool (Moosavi-Dezfooli, Fawzi and Frossard, CVPR 2016), batched.

The iteration of their Algorithm 2: at each step every still-correct image adds the minimal
linearised step to the nearest class boundary, r_i = |f_k| w_k / ||w_k||^2, computed at x + r_tot,
to its accumulated perturbation r_tot; the attacked image is x + (1 + overshoot) r_tot, clipped to
[0, 1], and the iteration stops once that image's prediction has left the true label. So the
overshoot scales the whole accumulated perturbation and the final image lies past the boundary
by about ``overshoot`` times the gap it crossed. torchattacks (and the authors' reference code)
take each step from the overshot image instead: the overshoot then only scales the last step,
and after several steps (common where [0, 1] clipping slows the iteration) the image sits on
the boundary, where floating-point rounding decides its label. torchattacks computes the
Jacobian one image at a time; here one forward pass and one backward pass per candidate class
cover the whole batch. As in the reference code (its ``num_classes``), the boundary is sought
among the ``candidates`` classes of highest logit (plus the true class).
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
        images = images.clone().detach().to(self.device)
        adv, total = images.clone(), torch.zeros_like(images)
        labels = labels.clone().detach().to(self.device)
        target = labels.clone()
        active = torch.ones(len(adv), dtype=torch.bool, device=adv.device)
        for _ in range(self.steps):
            idx = active.nonzero().squeeze(1)
            with torch.no_grad():
                pred = self.get_logits(adv[idx]).argmax(1) if len(idx) else labels[idx]
            done = pred != labels[idx]
            target[idx[done]], active[idx[done]] = pred[done], False
            idx = idx[~done]
            if len(idx) == 0:
                break
            step, target[idx] = self._step((images[idx] + total[idx]).clamp(0, 1), labels[idx])
            total[idx] += step
            adv[idx] = (images[idx] + (1 + self.overshoot) * total[idx]).clamp(0, 1)
        return adv.detach(), target

    def _step(self, point: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The minimal linearised step from ``point`` to the nearest boundary of class y, and that class."""
        x = point.requires_grad_(True)
        logits = self.get_logits(x)
        c = min(self.candidates, logits.shape[1])
        cls = logits.detach().topk(c, 1).indices
        missing = (cls != y[:, None]).all(1)  # y is not among the top c here: it takes the last place
        cls[missing, -1] = y[missing]
        grads = torch.stack([torch.autograd.grad(logits.gather(1, cls[:, j:j + 1]).sum(), x,
                                                 retain_graph=j + 1 < c)[0] for j in range(c)], 1)
        rows, logits = torch.arange(len(y), device=y.device), logits.detach()
        own = (cls == y[:, None]).float().argmax(1)  # position of the true class among the candidates
        f = logits.gather(1, cls) - logits[rows, y][:, None]  # (B, c): f_k - f_y
        w = grads - grads[rows, own][:, None]  # (B, c, C, H, W)
        wnorm = w.flatten(2).norm(dim=2)
        k = (f.abs() / wnorm).masked_fill(cls == y[:, None], float("inf")).argmin(1)
        step = (f[rows, k].abs() / wnorm[rows, k].pow(2).clamp_min(1e-20))[:, None, None, None] * w[rows, k]
        return step, cls[rows, k]


@register("deepfool", passes=lambda features, classes, steps, candidates, impl, **entry:
          steps * (classes if impl == "torchattacks" else min(candidates, classes)))
def deepfool(model, steps: int = 50, overshoot: float = 0.02, impl: str = "batched", candidates: int = 5):
    """DeepFool, L2 (Moosavi-Dezfooli, Fawzi and Frossard 2016, Algorithm 2). Arguments: ``steps`` (50),
    ``overshoot`` (0.02), ``impl``: ``batched`` (ours, default) or ``torchattacks`` (one image at a time,
    all classes), ``candidates`` (5: classes of highest logit searched for the nearest boundary)."""
    if impl == "torchattacks":
        return torchattacks.DeepFool(model, steps=steps, overshoot=overshoot)
    if impl != "batched":
        raise ValueError(f"deepfool impl must be 'batched' or 'torchattacks', got {impl!r}")
    return BatchedDeepFool(model, steps=steps, overshoot=overshoot, candidates=candidates)
