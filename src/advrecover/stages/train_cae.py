"""Stage ``train_cae``: the clean-image VAE (CAE) of Li, Angelov and Suri
(Sec. III-B) on the unlabelled ``cae`` pool.

Loss (their eq. (1)): L_CAE = ||X_S - X^_S||^2 + lambda1 * KL(q(Z_S | X_S) || N(0, I)), with the
decoder fed a reparametrised draw of the latent. Only images are read: the pool's labels, if
it has any, never reach the model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import scale, training
from ..config import entry, section
from ..data.pools import read_pool
from ..data.tensors import to_tensor
from ..io import config_digest, write_json
from ..models import autoencoder as ae

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CAEConfig:
    """``recovery.cae.<variant>``: the architecture (``layout``, ``patch``, encoder ``widths``,
    ``kernel``, ``stride``: see :class:`~advrecover.models.autoencoder.ConvVAE`), the KL weight
    ``lambda1`` of eq. (1), and the training options."""

    layout: str
    patch: int
    widths: tuple[int, ...]
    kernel: int
    stride: int
    lambda1: float
    train: training.Optimisation

    @property
    def architecture(self) -> dict:
        return {"layout": self.layout, "patch": self.patch, "widths": list(self.widths), "kernel": self.kernel,
                "stride": self.stride}


def cae_loss(x: torch.Tensor, x_hat: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             lambda1: float) -> dict:
    """The terms of eq. (1) and their weighted sum ``loss``."""
    recon, kl = ae.sse(x_hat, x), ae.kl_divergence(mu, logvar)
    return {"loss": recon + lambda1 * kl, "recon": recon, "kl": kl}


def cae_step(model: ae.ConvVAE, x: torch.Tensor, cfg: CAEConfig, device) -> dict:
    """Eq. (1) on one batch, the forward under the section's precision."""
    with cfg.train.autocast(device):
        mu, logvar = model.encode(x)
        return cae_loss(x, model.decode(model.sample(mu, logvar)), mu, logvar, cfg.lambda1)


def train(images: torch.Tensor, cfg: CAEConfig, seed: int, device, history_path, checkpoint_path, config_key: str = "",
          progress: bool = True) -> ae.ConvVAE:
    """Fit a CAE to ``images`` (N, 3, H, W in [0, 1]) through :func:`training.fit`."""
    torch.manual_seed(seed)
    model = ae.build(cfg.architecture, images.shape[-1]).to(device)
    opt, sched = cfg.train.build(model.parameters())

    def epoch_step(epoch, gen):
        model.train()
        return training.run_epoch(lambda x: cae_step(model, x, cfg, device), images, cfg.train.batch_size, gen, device, opt)

    training.fit(model, opt, sched, cfg.train.epochs, epoch_step, checkpoint_path, history_path, config_key, seed,
                 "train_cae", progress=progress)
    return model.eval()


def from_params(p: dict, args) -> dict:
    """The values of ``run`` that come from the validated params (and this job's ``args``): the
    one translation, used by the CLI and by :func:`workload`."""
    rec = p["recovery"]
    entry({v: v for v in rec["variants"]}, args.variant, "variant", "recovery.variants")
    return {"cfg": section(CAEConfig, rec["cae"][args.variant]), "seed": p["seed"]}


def run(*, cfg: CAEConfig, seed: int, device, pool_path: str | Path, model_path: str | Path, history_path: str | Path,
        metrics_path: str | Path, progress: bool = True) -> dict:
    """Train the CAE on the pool's images; write the model, the per-epoch history and metrics."""
    pool = read_pool(pool_path)
    if not len(pool.images):
        raise ValueError(f"{pool_path}: the cae pool is empty (sample.pools.cae.n)")
    images = to_tensor(pool.images)
    key = config_digest(cfg, seed, pool.attrs["checksum"])
    model = train(images, cfg, seed, device, history_path, Path(model_path).with_suffix(".ckpt"), key, progress)
    ae.save(model_path, model.cpu())
    metrics = {"n": len(images), "psnr_train": round(ae.mean_psnr(model, images, "cpu"), 4)}
    write_json(metrics_path, metrics)
    log.info("CAE: %d images, reconstruction PSNR %.2f dB", len(images), metrics["psnr_train"])
    return metrics


def workload(p: dict, job: scale.Job) -> list[scale.Load]:
    """``epochs`` passes of eq. (1) over the cae pool, then the PSNR pass. Writes the fresh-weight CAE."""
    cfg = from_params(p, job.args)["cfg"]
    size = p["sample"]["image_size"]
    model = ae.build(cfg.architecture, size)
    ae.save(job.path(job.args.model), model)
    n, shape = p["sample"]["pools"]["cae"]["n"], (3, size, size)
    return [scale.Load("training", lambda x: cae_step(model, x, cfg, "cpu")["loss"], (model,), "train",
                       cfg.train.batch_size, n * cfg.train.epochs, shape, cfg.train.slots, cfg.train.precision),
            scale.Load("reconstruction PSNR", model, (model,), "forward", 256, n, shape)]
