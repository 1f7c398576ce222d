"""Defences built to fail in known ways: each one tests that the adaptive evaluation notices."""

from __future__ import annotations

import numpy as np
import torch

from advrecover import inference
from advrecover.adaptive.checks import Checks
from advrecover.defences import Defence
from advrecover.adaptive import outcomes as O
from advrecover.stages.adaptive import AdaptiveConfig, Attacker, Batch, DetectionAware, attack_model
from advrecover.stages.adaptive_merge import threat_row

LINF = {"norm": "Linf", "eps": 16 / 255}
PGD = {"method": "pgd", "steps": 10}


def attacker(victim_and_images, defence, random=False, eot=1, differentiable=True, draws=1, attacks=None,
             batch_size=64, cascade=True, checks_n=0):
    """The stage's attacker on the stored victim through ``defence`` (constructed in the test)."""
    model = victim_and_images[0]
    cfg = AdaptiveConfig(n=0, train_sets=("mixed",), batch_size=batch_size, shards=(0,), cascade=cascade, eot=eot,
                         draws=draws, threats={"linf": LINF}, attacks=attacks or {"pgd": PGD},
                         detection_aware=DetectionAware(steps=2, weight=1.0),
                         checks=Checks(n=checks_n, steps=2, eps_sweep=(0.5, 1.0), unbounded_max_accuracy=0.05,
                                       steps_margin=0.05, tolerance=0.02, min_gradient_ratio=0.01))
    needs = {"differentiable": differentiable, "random": random, "surrogate": False}
    return Attacker(inference.prepare(model, "cpu"), defence, needs, cfg, 0, "cpu")


def batch(x, y, b=0, transfer=None, checked=None) -> Batch:
    """All of ``x`` as one batch (global index ``b``); no image in the checks' subset unless ``checked``."""
    return Batch(b, np.arange(len(x)), x, y, transfer or {},
                 np.zeros(len(x), dtype=bool) if checked is None else checked)


def everything(att, x, y, transfer=None, checked=None) -> tuple[dict, list]:
    """The stage's own path in memory: every unit on one batch (:func:`attack_model`), then the row
    the merge computes from its records (:func:`threat_row`), and the runs."""
    frames, totals = attack_model(att, None, "", [batch(x, y, transfer=transfer, checked=checked)])
    runs = O.from_records(frames[0])
    row, _ = threat_row(runs, LINF, totals["threats"]["linf"], att.cfg, checked, list(x.shape[1:]))
    return row, runs


def robust(att, x, y, route="full", spec=PGD) -> np.ndarray:
    """Per image: robust to one attack through ``route`` on every image."""
    bt = batch(x, y)
    return att.judge(att.attack(route, spec, LINF, bt, np.ones(len(x), dtype=bool)), y, 0).robust


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


class Blackout(Defence):
    """A random defence: each image, in each call, is replaced by black with probability ``p``
    (the victim then rarely answers right), else passed on unchanged."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def recover(self, x):
        keep = (torch.rand(len(x), device=x.device) >= self.p).view(-1, 1, 1, 1)
        return x * keep


class Recorder(Defence):
    """The identity that records which images (by the marker ``x[:, 0, 0, 0]``, spaced wider
    than the budget) each call received together: a batch-dependent defence's view."""

    def __init__(self, spacing: float):
        super().__init__()
        self.spacing, self.batches = spacing, []

    def recover(self, x):
        self.batches.append(frozenset(torch.round(x[:, 0, 0, 0].detach() / self.spacing).long().tolist()))
        return x


class InvertedQuantise(Defence):
    """Gradient masking that BPDA does not see through: it inverts and quantises the image, and
    brings a classifier that inverts it back. The exact gradient is zero (quantisation), the
    identity backward points the wrong way (the inversion); only the forward pass is honest, so
    a gradient-free attack breaks what no gradient route can."""

    def __init__(self, victim, levels: int = 64):
        super().__init__()
        self.levels, self.classifier = levels, _Inverted(victim)

    def recover(self, x):
        return torch.round((1 - x) * (self.levels - 1)) / (self.levels - 1)


class _Inverted(torch.nn.Module):
    def __init__(self, victim):
        super().__init__()
        self.victim = victim

    def forward(self, x):
        return self.victim(1 - x)


class EncodedVictim(torch.nn.Module):
    """A classifier of 10 classes that reads the class from the first pixel (``(c + 0.5) / 10``)."""

    def forward(self, x):
        return -(10 * x[:, :1, 0, 0] - 0.5 - torch.arange(10, device=x.device)) ** 2


class Coin(Defence):
    """A random defence of known odds for :class:`EncodedVictim`: each image, in each call,
    answers right with probability ``q`` and otherwise is recoded as the next class."""

    def __init__(self, q: float):
        super().__init__()
        self.q = q

    def recover(self, x):
        wrong = torch.rand(len(x), device=x.device) >= self.q
        out = x.clone()
        cls = torch.floor(10 * x[:, 0, 0, 0])
        out[wrong, 0, 0, 0] = ((cls[wrong] + 1) % 10 + 0.5) / 10
        return out
