"""Batched input Jacobian of a classifier, shared by the saliency- and boundary-based attacks."""

from __future__ import annotations

import torch


def logits_and_jacobian(get_logits, x: torch.Tensor):
    """Logits (B, K) and d logit_k / d x (B, K, C, H, W): one forward, K backward passes for the
    whole batch (images do not interact in an eval-mode network)."""
    x = x.clone().requires_grad_(True)
    logits = get_logits(x)
    k = logits.shape[1]
    grads = [torch.autograd.grad(logits[:, i].sum(), x, retain_graph=i + 1 < k)[0] for i in range(k)]
    return logits.detach(), torch.stack(grads, 1)
