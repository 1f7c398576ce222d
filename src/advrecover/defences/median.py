"""Median filtering as a defence (Xu, Evans and Qi 2018's feature squeezing; Naseer et al. 2020,
App. E): each pixel of each channel replaced by the median of its ``size`` x ``size`` window
(kornia, reflect padding). Piecewise the identity on one input pixel, so its (sub)gradient is
exact almost everywhere: the adaptive attacks differentiate through it."""

from __future__ import annotations

from . import Defence, register


class Median(Defence):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def recover(self, x):
        from kornia.filters import median_blur  # on first use, as tvm's scikit-image

        return median_blur(x, self.size)


@register("median", differentiable=True, random=False)
def build(size: int = 3):
    """Median filter over a ``size`` x ``size`` window (3), no distance bound."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"median size must be odd and positive, got {size}")
    return Median(size)
