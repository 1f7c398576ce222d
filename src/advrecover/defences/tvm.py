"""Total-variation minimisation as a defence (Rudin, Osher and Fatemi 1992; used against adversarial
examples by Guo et al. 2018, Naseer et al. 2020 App. E): Chambolle's (2004) TV denoising from
scikit-image, per image and colour channel jointly. Deterministic (Guo et al.'s random pixel
dropout is not applied) and without a gradient: the adaptive attacks use BPDA (identity backward)."""

from __future__ import annotations

import numpy as np
import torch
from skimage.restoration import denoise_tv_chambolle

from . import Defence, register


class TVM(Defence):
    def __init__(self, weight: float):
        super().__init__()
        self.weight = weight

    def recover(self, x):
        images = x.detach().permute(0, 2, 3, 1).cpu().double().numpy()
        out = np.stack([denoise_tv_chambolle(image, weight=self.weight, channel_axis=-1) for image in images])
        return torch.from_numpy(out).to(x.device, torch.float32).permute(0, 3, 1, 2).contiguous()


@register("tvm", differentiable=False, random=False)
def build(models_dir, train_set, weight: float = 0.05):
    """Total-variation minimisation (Chambolle's algorithm, scikit-image), no distance bound: denoising
    ``weight`` (0.05; larger removes more, perturbation and detail alike)."""
    if weight <= 0:
        raise ValueError(f"tvm weight must be positive, got {weight}")
    return TVM(weight)
