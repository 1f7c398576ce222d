"""JPEG compression as a defence (Dziugaite et al. 2016; Guo et al. 2018; Naseer et al. 2020, App. E):
each image is encoded and decoded by Pillow's libjpeg at ``quality``, a real codec (8-bit input,
4:2:0 chroma subsampling, Pillow's defaults). It has no gradient, so the adaptive attacks use
BPDA through a differentiable JPEG at the same quality (kornia's, after Reich et al. 2024)."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from . import Defence, register


def pillow_jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """One uint8 HxWx3 image through Pillow's JPEG encoder and decoder."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


class JPEG(Defence):
    def __init__(self, quality: int):
        super().__init__()
        self.quality = quality

    def recover(self, x):
        images = (x.detach() * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        out = np.stack([pillow_jpeg(image, self.quality) for image in images])
        return torch.from_numpy(out).to(x.device).permute(0, 3, 1, 2).float().div(255)

    def surrogate(self, x):
        from kornia.enhance import jpeg_codec_differentiable  # on first use, as tvm's scikit-image

        return jpeg_codec_differentiable(x, torch.tensor([float(self.quality)], device=x.device))


@register("jpeg", differentiable=False, random=False, surrogate=True)
def build(quality: int = 75):
    """JPEG at ``quality`` (75; Naseer et al. App. E also use 50 and 20), no distance bound: Pillow's codec;
    BPDA surrogate: kornia's differentiable JPEG at the same quality."""
    if not 1 <= quality <= 95:
        raise ValueError(f"jpeg quality must be in 1..95 (Pillow's useful range), got {quality}")
    return JPEG(quality)
