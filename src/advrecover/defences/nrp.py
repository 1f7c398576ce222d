"""NRP (Naseer et al., CVPR 2020) as a defence: the generator trained by stage ``train_purifier``
(``<models>/purifiers/<purifier>.pt``), applied to every input. The dynamic form (their
Appendix B.1, the official ``purify.py --dynamic``) first adds Gaussian noise, projects it back
into the ``radius`` ball of the input and clips to [0, 1]: a random defence, attacked with EOT."""

from __future__ import annotations

import torch

from ..purifiers import load_generator
from . import Defence, register


class Purify(Defence):
    def __init__(self, generator, noise: float = 0.0, radius: float = 0.0):
        super().__init__()
        self.generator, self.noise, self.radius = generator, noise, radius

    def perturb(self, x: torch.Tensor) -> torch.Tensor:
        """The dynamic step: Gaussian noise of std ``noise``, projected into the ``radius`` ball of x, clipped."""
        if not self.noise:
            return x
        noisy = x + self.noise * torch.randn_like(x)
        return torch.min(torch.max(noisy, x - self.radius), x + self.radius).clamp(0, 1)

    def recover(self, x):
        return self.generator(self.perturb(x))


@register("nrp", differentiable=True, random=False)
def build(models_dir, purifier: str = "nrp"):
    """NRP, static (Naseer et al. 2020; no distance bound): the generator of ``purifiers.<purifier>`` (``nrp``)."""
    return Purify(load_generator(models_dir / "purifiers" / f"{purifier}.pt"))


@register("nrp_dynamic", differentiable=True, random=True)
def build_dynamic(models_dir, purifier: str = "nrp", noise: float = 0.05, radius: float = 16 / 255):
    """NRP, dynamic (Naseer et al. 2020, App. B.1): Gaussian noise of std ``noise`` (0.05) projected into the
    Linf ball of ``radius`` (16/255) around the input, then the generator of ``purifiers.<purifier>`` (``nrp``)."""
    return Purify(load_generator(models_dir / "purifiers" / f"{purifier}.pt"), noise, radius)
