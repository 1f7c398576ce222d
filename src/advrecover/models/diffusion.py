"""A denoising diffusion model for diffusion purification (DiffPure, Nie et al. 2022): diffusers'
``UNet2DModel`` predicting the noise of ``DDPMScheduler``'s forward process (Ho, Jain and Abbeel
2020, eq. 14). Images live in [-1, 1] inside the model, [0, 1] outside.

A checkpoint (stage ``train_diffusion``) holds the U-Net's and the schedule's diffusers configs and
the U-Net's weights, read back with ``weights_only``: the same file whether the U-Net was trained
here or read from a pretrained diffusers directory (safetensors only, never downloaded).
diffusers is imported where it is used: importing it takes seconds, and every stage that loads the
defence registry would pay them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

import torch

from ..io import atomic_path, load_checkpoint
from .victim import load_weights

if TYPE_CHECKING:
    from diffusers import DDPMScheduler, UNet2DModel


@dataclass(frozen=True)
class DiffusionSpec:
    """``diffusion.model``: channels per U-Net level ``widths`` (each level but the last halves the
    resolution), ResNet blocks per level ``layers``, GroupNorm ``groups``, and the DDPM schedule:
    ``timesteps`` T, betas linear from ``beta_start`` to ``beta_end`` (Ho et al.: 1000, 1e-4, 0.02)."""

    widths: tuple[int, ...]
    layers: int
    groups: int
    timesteps: int
    beta_start: float
    beta_end: float


def unet(spec: DiffusionSpec, image_size: int) -> UNet2DModel:
    """The noise-prediction U-Net of ``spec`` for RGB images of ``image_size`` pixels."""
    from diffusers import UNet2DModel

    levels = len(spec.widths)
    return UNet2DModel(sample_size=image_size, in_channels=3, out_channels=3, layers_per_block=spec.layers,
                       block_out_channels=tuple(spec.widths), norm_num_groups=spec.groups,
                       down_block_types=("DownBlock2D",) * levels, up_block_types=("UpBlock2D",) * levels)


def schedule(spec: DiffusionSpec) -> DDPMScheduler:
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=spec.timesteps, beta_start=spec.beta_start, beta_end=spec.beta_end,
                         beta_schedule="linear")


def _plain(config) -> dict:
    """A diffusers config as plain containers (``weights_only`` loads them; private keys dropped)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items() if not k.startswith("_")}


def save(path: str | Path, model: UNet2DModel, scheduler: DDPMScheduler, t_max: int) -> None:
    """Write the U-Net and its schedule; ``t_max``: the largest timestep it was trained to denoise."""
    with atomic_path(path) as tmp:
        torch.save({"unet_config": _plain(model.config), "scheduler_config": _plain(scheduler.config),
                    "t_max": int(t_max), "unet": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, tmp)


def load(path: str | Path) -> tuple[UNet2DModel, DDPMScheduler, int]:
    """The U-Net written by :func:`save` (eval mode, frozen), its schedule and its ``t_max``."""
    from diffusers import DDPMScheduler, UNet2DModel

    state = load_checkpoint(path, "diffusion model")
    if not {"unet_config", "scheduler_config", "t_max", "unet"} <= set(state):
        raise ValueError(f"diffusion model: {path} was not written by the train_diffusion stage")
    model = load_weights(UNet2DModel.from_config(state["unet_config"]), state["unet"], path, "diffusion model")
    return model.eval().requires_grad_(False), DDPMScheduler.from_config(state["scheduler_config"]), state["t_max"]


# Ho et al.'s CIFAR-10 DDPM (35.7M parameters; diffusers' google/ddpm-cifar10-32 layout): what
# benchmarks/scale.py costs for a pretrained model whose directory is not on this machine
CIFAR10_DDPM = {"sample_size": 32, "block_out_channels": [128, 256, 256, 256], "layers_per_block": 2,
                "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
                "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]}


def pretrained_architecture(directory: str | Path) -> UNet2DModel:
    """A fresh-weight U-Net of the pretrained model's architecture (its ``config.json``; where the directory
    is absent, :data:`CIFAR10_DDPM`): for costing a job, never for purifying."""
    from diffusers import UNet2DModel

    config = Path(directory) / "config.json"
    return UNet2DModel.from_config(UNet2DModel.load_config(config) if config.is_file() else CIFAR10_DDPM)


def load_pretrained(directory: str | Path) -> tuple[UNet2DModel, DDPMScheduler]:
    """A pretrained diffusers DDPM in a local ``directory`` (the U-Net's ``config.json`` and safetensors
    weights, ``scheduler_config.json``): never downloaded, never unpickled."""
    from diffusers import DDPMScheduler, UNet2DModel

    directory = Path(directory)
    missing = [f for f in ("config.json", "scheduler_config.json") if not (directory / f).is_file()]
    if missing:
        raise FileNotFoundError(f"diffusion.pretrained: {directory} is no diffusers model directory "
                                f"({', '.join(missing)} missing)")
    model = UNet2DModel.from_pretrained(directory, use_safetensors=True, local_files_only=True)
    return model.eval(), DDPMScheduler.from_pretrained(directory, local_files_only=True)
