"""Stage ``train_diffusion``: the denoising diffusion model of the ``diffpure`` defence (Nie et al.
2022), trained without labels on the clean images of the pool ``diffusion.pool`` (the victim's):
the noise-prediction loss ||eps - eps_theta(sqrt(abar_t) x + sqrt(1 - abar_t) eps, t)||^2 of Ho, Jain
and Abbeel (2020, eq. 14), Adam through :func:`advrecover.training.fit`. Purification only denoises
from a small t*, so t is drawn uniformly from 1..``diffusion.train.t_max`` rather than 1..T (every
``diffpure`` row's ``t_star`` must lie within it). With ``diffusion.pretrained`` (a local diffusers
directory: the paper preset's CIFAR-10 DDPM) nothing is trained: that model is checked and written
in the same format. The loss before and after is measured on a seeded subset of the pool
(:data:`LOSS_IMAGES`), with the same timesteps and noise both times.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import scale, training
from ..config import section
from ..data.tensors import pool_tensor
from ..io import atomic_path, config_digest, write_json
from ..models import diffusion

log = logging.getLogger(__name__)

LOSS_IMAGES = 1024  # images of the before/after loss: a progress figure, not worth two passes over 8,000


@dataclass(frozen=True)
class DiffusionTraining:
    """``diffusion.train``: Adam's ``lr``, ``batch_size``, ``epochs``, and ``t_max``, the largest timestep drawn."""

    lr: float
    batch_size: int
    epochs: int
    t_max: int


def denoising_loss(unet, scheduler, x: torch.Tensor, t_max: int) -> torch.Tensor:
    """Ho et al. (2020), eq. 14 on images ``x`` in [0, 1], t uniform in 1..``t_max``."""
    z = 2 * x - 1
    t = torch.randint(1, t_max + 1, (len(z),), device=z.device)
    noise = torch.randn_like(z)
    return F.mse_loss(unet(scheduler.add_noise(z, noise, t), t).sample, noise)


def mean_loss(unet, scheduler, images: torch.Tensor, batch_size: int, t_max: int, seed: int, device) -> float:
    """The loss over a seeded subset of ``images`` (:data:`LOSS_IMAGES`) with seeded timesteps and
    noise: the same draws before and after training."""
    gen = torch.Generator().manual_seed(seed)
    subset = images[torch.randperm(len(images), generator=gen)[:LOSS_IMAGES]]
    torch.manual_seed(seed)
    with torch.no_grad():
        total = sum(float(denoising_loss(unet, scheduler, b.to(device), t_max)) * len(b)
                    for b in subset.split(batch_size))
    return total / len(subset)


def train(unet, scheduler, images: torch.Tensor, cfg: DiffusionTraining, seed: int, device, history_path,
          checkpoint_path, config_key: str, progress: bool = True) -> None:
    """Fit ``unet`` to the denoising loss on ``images`` through :func:`training.fit`."""
    opt = torch.optim.Adam(unet.parameters(), lr=cfg.lr)

    def epoch_step(epoch: int, gen: torch.Generator) -> dict:
        unet.train()
        return training.run_epoch(lambda x: {"loss": denoising_loss(unet, scheduler, x, cfg.t_max)}, images,
                                  cfg.batch_size, gen, device, opt)

    training.fit(unet, opt, None, cfg.epochs, epoch_step, checkpoint_path, history_path, config_key, seed,
                 "train_diffusion", progress=progress)
    unet.eval()


def from_params(p: dict, args) -> dict:
    """The values of ``run`` that come from the validated params: the one translation, used by the CLI
    and by :func:`workload`."""
    d = p["diffusion"]
    return {"spec": section(diffusion.DiffusionSpec, d["model"]),
            "cfg": section(DiffusionTraining, d["train"]), "pretrained": d["pretrained"],
            "image_size": p["sample"]["image_size"], "seed": p["seed"]}


def run(*, spec: diffusion.DiffusionSpec, cfg: DiffusionTraining, pretrained: str | None, image_size: int,
        pool_path: str | Path, seed: int, device, model_path: str | Path, history_path: str | Path,
        metrics_path: str | Path, progress: bool = True) -> dict:
    """Train (or read ``pretrained``) the diffusion model; write it and its loss before and after."""
    pool, images = pool_tensor(pool_path, "diffusion.pool")
    if pretrained:
        unet, scheduler = diffusion.load_pretrained(pretrained)
        t_max = int(scheduler.config.num_train_timesteps)
    else:
        torch.manual_seed(seed)
        unet, scheduler, t_max = diffusion.unet(spec, image_size), diffusion.schedule(spec), cfg.t_max
    unet.to(device)
    before = mean_loss(unet.eval(), scheduler, images, cfg.batch_size, t_max, seed, device)
    if pretrained:
        with atomic_path(history_path) as tmp:
            Path(tmp).write_text("epoch,loss\n")
    else:
        key = config_digest(spec, cfg, seed, pool.attrs["checksum"])
        train(unet, scheduler, images, cfg, seed, device, history_path, Path(model_path).with_suffix(".ckpt"), key,
              progress)
    diffusion.save(model_path, unet, scheduler, t_max)
    metrics = {"n": len(images), "loss_n": min(len(images), LOSS_IMAGES), "t_max": t_max,
               "pretrained": bool(pretrained), "loss_untrained": round(before, 6),
               "loss": round(mean_loss(unet, scheduler, images, cfg.batch_size, t_max, seed, device), 6)}
    write_json(metrics_path, metrics)
    log.info("diffusion model: %s", metrics)
    return metrics


def workload(p: dict, job: scale.Job) -> list[scale.Load]:
    """``epochs`` Adam passes of the denoising loss over the pool, and the loss before and after. Writes
    a fresh-weight U-Net of the trained (or the pretrained) architecture."""
    job_cfg = from_params(p, job.args)
    cfg, size = job_cfg["cfg"], job_cfg["image_size"]
    scheduler = diffusion.schedule(job_cfg["spec"])
    if job_cfg["pretrained"]:
        unet = diffusion.pretrained_architecture(job_cfg["pretrained"])  # read where the user keeps it
        epochs, t_max = 0, job_cfg["spec"].timesteps
    else:
        unet, epochs, t_max = diffusion.unet(job_cfg["spec"], size), cfg.epochs, cfg.t_max
    diffusion.save(job.path(job.args.model), unet, scheduler, t_max)
    n, shape = p["sample"]["pools"][p["diffusion"]["pool"]]["n"], (3, size, size)
    loss = lambda x: denoising_loss(unet, scheduler, x, t_max)  # noqa: E731
    return [scale.Load("training", loss, (unet,), "train", cfg.batch_size, n * epochs, shape, slots=2),
            scale.Load("loss before and after", loss, (unet,), "forward", cfg.batch_size,
                       2 * min(n, LOSS_IMAGES), shape)]
