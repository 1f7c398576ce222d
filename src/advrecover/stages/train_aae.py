"""Stages ``train_aae`` and ``train_aae_mixed``: the adversarial-image VAE (AAE) of Li, Angelov and
Suri (Sec. III-C).

With the CAE frozen, for a batch X_A of adversarial images (Li, Angelov and Suri, eq. (2)-(6)):
  Z_A = E_AAE(X_A) (reparametrised draw),  X~_C = D_CAE(Z_A),  Z^_A = E_CAE(X~_C) (its mean),
  X^_A = D_AAE(Z^_A),
  L_AAE = lambda2 * KL_AAE + ||X_A - X^_A||^2 + ||Z_A - Z^_A||^2,
with only ||X_A - X^_A||^2 during the warm-up (Li et al.: the first 300 of 1500 epochs).
Two named deviations, both off in the faithful variant: ``anchor`` adds
anchor * ||D_CAE(Z_A) - X_A||^2 (eq. (6) alone does not tie the recovery D_CAE(Z_A) to the
input), and ``init_from_cae`` starts the AAE from the CAE's weights.
Only images are read: labels never reach either model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import scale, training
from ..config import entry, section
from ..data.adversarial import read_adversarial, read_attrs
from ..data.tensors import to_tensor
from ..io import config_digest, sha256_file, write_json
from ..models import autoencoder as ae

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AAEConfig:
    """``recovery.aae.<variant>``: E_AAE/D_AAE's ``widths``, ``kernel`` and ``stride`` (the image
    layout is the CAE's), the KL weight ``lambda2`` of eq. (5), the ``warmup`` share of epochs on
    the reconstruction term alone, the two deviations ``anchor`` (weight) and ``init_from_cae``,
    and the training options."""

    widths: tuple[int, ...]
    kernel: int
    stride: int
    lambda2: float
    warmup: float
    anchor: float
    init_from_cae: bool
    train: training.Optimisation

    def architecture(self, cae: ae.ConvVAE) -> dict:
        """The AAE's architecture: this section's convolutions on the layout of ``cae``."""
        return {**cae.architecture, "widths": list(self.widths), "kernel": self.kernel, "stride": self.stride}


def cycle(cae: ae.ConvVAE, aae: ae.ConvVAE, x_a: torch.Tensor) -> dict:
    """The tensors of eq. (2)-(4) for one batch."""
    mu, logvar = aae.encode(x_a)
    z_a = aae.sample(mu, logvar)
    x_c = cae.decode(z_a)
    z_hat, _ = cae.encode(x_c)
    return {"mu": mu, "logvar": logvar, "z_a": z_a, "x_c": x_c, "z_hat": z_hat, "x_hat": aae.decode(z_hat)}


def aae_loss(x_a: torch.Tensor, t: dict, lambda2: float, anchor: float, warmup: bool) -> dict:
    """The terms of eq. (5)-(6) (plus the optional anchor) and their weighted sum ``loss``."""
    terms = {"x_a": ae.sse(t["x_hat"], x_a), "z_a": ae.sse(t["z_a"], t["z_hat"]),
             "kl": ae.kl_divergence(t["mu"], t["logvar"]), "anchor": ae.sse(t["x_c"], x_a)}
    loss = terms["x_a"] + anchor * terms["anchor"]
    if not warmup:
        loss = loss + lambda2 * terms["kl"] + terms["z_a"]
    return {"loss": loss, **terms}


def aae_step(cae: ae.ConvVAE, model: ae.ConvVAE, x: torch.Tensor, cfg: AAEConfig, warm: bool, device) -> dict:
    """Eq. (2)-(6) on one batch (reconstruction only while ``warm``), the forward under the section's precision."""
    with cfg.train.autocast(device):
        return aae_loss(x, cycle(cae, model, x), cfg.lambda2, cfg.anchor, warm)


def training_images(sets: dict[str, Path], train_set: str, seed: int, pool_checksum: str | None = None,
                    ) -> tuple[torch.Tensor, str]:
    """The adversarial images of ``train_set`` (an attack name, or ``mixed``: every pool image in the
    version of one attack drawn at random with ``seed``), and the checksums they were read under."""
    names = sorted(sets) if train_set == "mixed" else [train_set]
    read = {name: read_adversarial(sets[name], pool_checksum=pool_checksum) for name in names}
    victims = {s.attrs["victim_checksum"] for s in read.values()}
    if len(victims) > 1:
        raise ValueError(f"the sets {names} were made against different victims; re-run their attack stages")
    index = read[names[0]].pool_index
    for name, s in read.items():
        if not np.array_equal(s.pool_index, index):
            raise ValueError(f"{sets[name]}: holds other pool images than {sets[names[0]]}; re-run its attack stage")
    if train_set == "mixed":
        choice = np.random.default_rng([seed, len(names)]).integers(0, len(names), len(index))
        images = np.stack([read[names[c]].float_images[i] for i, c in enumerate(choice)]) if len(index) else \
            read[names[0]].float_images
    else:
        images = read[names[0]].float_images
    return to_tensor(images), victims.pop()


def train(cae: ae.ConvVAE, images: torch.Tensor, cfg: AAEConfig, seed: int, device, history_path, checkpoint_path,
          config_key: str = "", progress: bool = True) -> ae.ConvVAE:
    """Fit an AAE to adversarial ``images`` with ``cae`` frozen; the CAE's weights are checked unchanged."""
    torch.manual_seed(seed)
    cae = cae.to(device).eval().requires_grad_(False)
    before = {k: v.clone() for k, v in cae.state_dict().items()}
    model = ae.build(cfg.architecture(cae), images.shape[-1]).to(device)
    if cfg.init_from_cae:
        model.load_state_dict(cae.state_dict())
    opt, sched = cfg.train.build(model.parameters())
    warmup_epochs = round(cfg.warmup * cfg.train.epochs)

    def epoch_step(epoch, gen):
        model.train()
        warm = epoch <= warmup_epochs
        return training.run_epoch(lambda x: aae_step(cae, model, x, cfg, warm, device), images, cfg.train.batch_size, gen, device, opt)

    training.fit(model, opt, sched, cfg.train.epochs, epoch_step, checkpoint_path, history_path, config_key, seed,
                 "train_aae", progress=progress)
    after = cae.state_dict()
    if any(not torch.equal(before[k], after[k]) for k in before):
        raise RuntimeError("the CAE changed during AAE training; it must stay frozen")
    return model.eval()


def from_params(p: dict, args) -> dict:
    """The values of ``run`` that come from the validated params (and this job's ``args``): the
    one translation, used by the CLI and by :func:`workload`."""
    rec = p["recovery"]
    entry({v: v for v in rec["variants"]}, args.variant, "variant", "recovery.variants")
    if args.train_set != "mixed":
        entry({t: t for t in rec["train_on"]}, args.train_set, "train-set", "recovery.train_on (or mixed)")
    names = rec["train_on"] if args.train_set == "mixed" else [args.train_set]
    return {"cfg": section(AAEConfig, rec["aae"][args.variant]), "train_set": args.train_set, "seed": p["seed"],
            "sets": {a: Path(args.sets) / f"{a}.h5" for a in names}}


def run(*, cfg: AAEConfig, train_set: str, sets: dict[str, Path], pool_path: str | Path, cae_path: str | Path, seed: int,
        device, model_path: str | Path, history_path: str | Path, metrics_path: str | Path,
        progress: bool = True) -> dict:
    """Train the AAE on the aae pool's adversarial set(s) against the frozen CAE at ``cae_path``."""
    pool_checksum = read_attrs(pool_path)["checksum"]
    images, victim_checksum = training_images(sets, train_set, seed, pool_checksum)
    if not len(images):
        raise ValueError(f"the {train_set} training set is empty (sample.pools.aae.n)")
    cae = ae.load(cae_path)
    key = config_digest(cfg, train_set, seed, sha256_file(cae_path), pool_checksum, victim_checksum)
    model = train(cae, images, cfg, seed, device, history_path, Path(model_path).with_suffix(".ckpt"), key, progress)
    ae.save(model_path, model.cpu())
    cae = cae.cpu()
    psnr = ae.mean_psnr(lambda x: cae.decode(model.encode(x)[0]), images, "cpu")
    metrics = {"train_set": train_set, "n": len(images), "psnr_recovery_to_input": round(psnr, 4)}
    write_json(metrics_path, metrics)
    log.info("AAE on %s: %d images, PSNR of D_CAE(E_AAE(x)) to x %.2f dB", train_set, len(images),
             metrics["psnr_recovery_to_input"])
    return metrics


def workload(p: dict, job: scale.Job) -> list[scale.Load]:
    """``epochs`` passes of eq. (2)-(6) over the aae pool's adversarial images (E_AAE, the frozen
    D_CAE and E_CAE, D_AAE), then the PSNR pass. Writes the fresh-weight AAE."""
    cfg = from_params(p, job.args)["cfg"]
    size = p["sample"]["image_size"]
    cae = ae.load(job.path(job.args.cae)).requires_grad_(False)
    model = ae.build(cfg.architecture(cae), size)
    ae.save(job.path(job.args.model), model)
    n, shape = p["sample"]["pools"]["aae"]["n"], (3, size, size)
    return [scale.Load("training", lambda x: aae_step(cae, model, x, cfg, False, "cpu")["loss"], (model, cae),
                       "train", cfg.train.batch_size, n * cfg.train.epochs, shape, cfg.train.slots,
                       cfg.train.precision),
            scale.Load("recovery PSNR", lambda x: cae.decode(model.encode(x)[0]), (model, cae), "forward", 256, n,
                       shape)]
