"""Total-variation minimisation as a defence (Rudin, Osher and Fatemi 1992; used against adversarial
examples by Guo et al. 2018, Naseer et al. 2020 App. E): Chambolle's (2004) TV denoising from
scikit-image, each colour channel of each image. Deterministic (Guo et al.'s random pixel
dropout is not applied). It has no gradient: the adaptive attacks use BPDA with the identity
(Athalye et al. 2018) and through :func:`chambolle`, the same iteration unrolled in torch."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import Defence, register

SURROGATE_STEPS = 20  # scikit-image's stopping rule ends after about 20-30 iterations on these images


def chambolle(x: torch.Tensor, weight: float, steps: int = SURROGATE_STEPS) -> torch.Tensor:
    """``steps`` iterations of Chambolle's dual projection (2004, eq. (9), step 1/4), per channel, as
    scikit-image iterates it: differentiable by autograd (the norm is smoothed by 1e-12 at zero)."""
    p0 = p1 = torch.zeros_like(x)
    out, tau = x, 0.25
    for i in range(steps):
        if i:  # out = x - div(p), with scikit-image's boundary handling
            out = x - p0 - p1 + F.pad(p0[..., :-1, :], (0, 0, 1, 0)) + F.pad(p1[..., :, :-1], (1, 0))
        g0, g1 = F.pad(out.diff(dim=-2), (0, 0, 0, 1)), F.pad(out.diff(dim=-1), (0, 1))
        scale = 1 + (tau / weight) * (g0.square() + g1.square() + 1e-12).sqrt()
        p0, p1 = (p0 - tau * g0) / scale, (p1 - tau * g1) / scale
    return out


class TVM(Defence):
    def __init__(self, weight: float):
        super().__init__()
        self.weight = weight

    def recover(self, x):
        from skimage.restoration import denoise_tv_chambolle  # on first use: ~1 s that other defences' jobs skip

        images = x.detach().permute(0, 2, 3, 1).cpu().double().numpy()
        out = np.stack([denoise_tv_chambolle(image, weight=self.weight, channel_axis=-1) for image in images])
        return torch.from_numpy(out).to(x.device, torch.float32).permute(0, 3, 1, 2).contiguous()

    def surrogate(self, x):
        return chambolle(x, self.weight)


@register("tvm", differentiable=False, random=False, surrogate=True)
def build(weight: float = 0.05):
    """Total-variation minimisation (Chambolle's algorithm, scikit-image), no distance bound: denoising
    ``weight`` (0.05; larger removes more, perturbation and detail alike); BPDA surrogate: the
    iteration unrolled in torch."""
    if weight <= 0:
        raise ValueError(f"tvm weight must be positive, got {weight}")
    return TVM(weight)
