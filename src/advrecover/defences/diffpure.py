"""Diffusion purification (DiffPure, Nie et al. 2022, eq. 4 with the discretised reverse process of
their App. B; the DDPM form of Wang et al. 2022): diffuse the input to timestep ``t_star`` with
fresh Gaussian noise, x_t = sqrt(abar_t) x + sqrt(1 - abar_t) eps (Ho et al. 2020, eq. 4), then run
the reverse process back to timestep 0 with the trained noise predictor: DDPM ancestral steps
(``steps`` = ``t_star``) or DDIM steps (Song, Meng and Ermon 2021, eta 0) of stride t_star/steps.

Random (the diffusion noise, and the DDPM steps' noise: attacked with EOT, judged over many
draws). Differentiable: the ``full`` route backpropagates through the whole reverse chain, each
step under gradient checkpointing (its activations recomputed in the backward pass, its random
draws replayed), so memory does not grow with the number of steps (Lee and Kim 2023 attack it so).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.checkpoint import checkpoint

from ..models import diffusion
from . import Defence, register


class DiffPure(Defence):
    """Nie et al. (2022): diffuse to ``t_star``, reverse in ``steps`` steps; arguments in :func:`build`."""

    def __init__(self, unet, scheduler, t_star: int, steps: int, checkpointed: bool = True):
        super().__init__()
        stride, total = t_star // steps, scheduler.config.num_train_timesteps
        if steps < 1 or t_star % steps or total // (total // stride) != stride:
            raise ValueError(f"diffpure: t_star {t_star} must be a multiple of steps {steps}, with a stride the "
                             f"DDIM schedule of T {total} can take")
        self.unet, self.t_star, self.checkpointed = unet, t_star, checkpointed
        self.forward_process = scheduler
        if stride == 1:
            self.reverse_process = scheduler  # DDPM: each step t -> t - 1, with its posterior noise
        else:
            from diffusers import DDIMScheduler  # imported here: seconds that no other defence should pay

            self.reverse_process = DDIMScheduler.from_config(scheduler.config)
            self.reverse_process.set_timesteps(total // stride)  # steps t -> t - stride
        self.timesteps = list(range(t_star, 0, -stride))

    def _step(self, x: torch.Tensor, t: int) -> torch.Tensor:
        eps = self.unet(x, torch.full((len(x),), t, device=x.device)).sample
        return self.reverse_process.step(eps, t, x).prev_sample

    def recover(self, x):
        abar = self.forward_process.alphas_cumprod[self.t_star].to(x.device, x.dtype)
        z = abar.sqrt() * (2 * x - 1) + (1 - abar).sqrt() * torch.randn_like(x)
        for t in self.timesteps:
            if self.checkpointed and torch.is_grad_enabled():
                z = checkpoint(self._step, z, t, use_reentrant=False)
            else:
                z = self._step(z, t)
        return ((z + 1) / 2).clamp(0, 1)


@register("diffpure", differentiable=True, random=True)
def build(models_dir, t_star: int, steps: int, checkpointed: bool = True):
    """DiffPure (Nie et al. 2022; no distance bound): the diffusion model of stage ``train_diffusion``
    (``<models>/diffusion/diffusion.pt``), diffused to timestep ``t_star`` (required; Nie
    et al.: 100 of T = 1000, t* = 0.1) and reversed in ``steps`` (required; ``t_star``: DDPM, fewer:
    DDIM), each step gradient-checkpointed (``checkpointed``, true)."""
    unet, scheduler, t_max = diffusion.load(Path(models_dir) / "diffusion" / "diffusion.pt")
    if t_star > t_max:
        raise ValueError(f"diffpure: t_star {t_star} beyond the timesteps the diffusion model was trained on "
                         f"(up to {t_max}): raise diffusion.train.t_max and re-run train_diffusion")
    return DiffPure(unet, scheduler, t_star, steps, checkpointed)
