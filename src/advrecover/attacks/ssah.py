"""SSAH: semantic similarity attack with a low-frequency constraint (Luo et al., CVPR 2022).

Attacks the feature space, not the labels: in a batch, each adversarial image's
penultimate-layer feature is pushed away from its own clean feature (positive) and towards the
least similar clean feature of the batch (negative, chosen at step 0 and kept fixed), with
adaptive weights w_p = max(s_pos - m, 0) and w_n = max(1 + m - s_neg, 0) (eq. 3-4 of the
paper). A low-frequency term keeps the one-level Haar LL reconstruction of the adversarial
image near the clean one (SmoothL1, summed; eq. 6). The image is optimised through
x = (tanh(w) + 1) / 2 with Adam, as in the official code; there is no epsilon ball.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchattacks.attack import Attack

from . import register
from ..models.features import penultimate


def haar_lowpass(x: torch.Tensor) -> torch.Tensor:
    """Inverse one-level Haar DWT of the LL band alone (LH, HL, HH set to zero).

    With Haar filters this equals replacing each 2x2 block by its mean; odd sizes are
    edge-padded (replicate) by one pixel first and cropped back."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    low = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
    return low[..., :h, :w]


class SSAH(Attack):
    def __init__(self, model, steps: int, lr: float, alpha: float, lambda_lf: float, margin: float):
        super().__init__("SSAH", model)
        self.steps, self.lr, self.alpha, self.lambda_lf, self.margin = steps, lr, alpha, lambda_lf, margin
        self.features = penultimate(model)
        self.supported_mode = ["default"]

    def forward(self, images, labels=None):
        x = images.clone().detach().to(self.device)
        with torch.no_grad():
            clean = F.normalize(self.features(x), dim=1)
        low_clean = haar_lowpass(x)
        e = 3e-7
        w = torch.atanh(x * (2 - 2 * e) - 1 + e).requires_grad_(True)
        opt = torch.optim.Adam([w], lr=self.lr)
        rows = torch.arange(len(x), device=x.device)
        negative = None
        for _ in range(self.steps):
            adv = (torch.tanh(w) + 1) / 2
            sim = F.normalize(self.features(adv), dim=1) @ clean.T
            if negative is None:
                negative = sim.detach().argmin(1)  # the hardest negative, fixed from step 0
            s_pos, s_neg = sim[rows, rows], sim[rows, negative]
            w_p = (s_pos.detach() - self.margin).clamp(min=0)
            w_n = (1 + self.margin - s_neg.detach()).clamp(min=0)
            adv_loss = (w_p * s_pos - w_n * s_neg).clamp(min=0).sum()
            lf_loss = F.smooth_l1_loss(haar_lowpass(adv), low_clean, reduction="sum")
            loss = self.alpha * adv_loss + self.lambda_lf * lf_loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        return ((torch.tanh(w) + 1) / 2).detach()


@register("ssah", label_free=True, passes=lambda features, classes, steps, **entry: steps)
def ssah(model, steps: int, lr: float, alpha: float = 1.0, lambda_lf: float = 0.1, margin: float = 0.2):
    """SSAH (Luo et al. 2022), no norm ball: ``steps``, ``lr`` (Adam on the tanh variable), ``alpha`` (1.0,
    the official code; Li, Angelov and Suri list 0.01), ``lambda_lf`` (0.1: weight of the Haar-LL term),
    ``margin`` (0.2: of the feature-similarity loss)."""
    return SSAH(model, steps=steps, lr=lr, alpha=alpha, lambda_lf=lambda_lf, margin=margin)
