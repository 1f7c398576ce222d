"""Stage ``train_purifier``: one purifier of ``purifiers`` (NRP, Pix2Pix: :mod:`advrecover.purifiers`)
trained without labels on the ``cae`` pool.

The training pairs are (perturbed, clean): the clean images of the unlabelled ``cae`` pool (NRP's
MS-COCO) and their label-free SSP perturbations (Naseer et al. 2020), made by the attack
instance ``train.attack`` against the victim's features, once before training or afresh every
epoch (``train.fresh_ssp``, as NRP does). Each batch: one critic step, then one generator step
(Adam, ``train.lr`` and ``train.betas`` for both), with the pair flipped horizontally at random
when ``train.flip`` (Mezhoudi Sec. 4). The perceptual loss reads ``train.features``: the
victim's penultimate features or a VGG16 from a local weights file. Only images are read:
labels never reach the purifier, the critic or the perturbation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import kornia.augmentation as K
import torch

from .. import attacks, inference, purifiers, scale, training
from ..config import entry, section
from ..attacks.features import network as feature_network, vgg16_relu3_3
from ..data.tensors import pool_tensor
from ..io import config_digest, sha256_file, write_json
from ..models import victim as victims

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PurifierTraining:
    """``purifiers.<name>.train``: the ``attack`` instance (of ``attack.instances``) that perturbs
    the pool, ``fresh_ssp`` (new perturbations every epoch), the perceptual ``features`` network
    (``victim`` | ``vgg16`` with local ``features_weights``), Adam's ``lr`` and ``betas``,
    ``batch_size``, ``epochs`` and ``flip`` (random horizontal flips of the pairs)."""

    attack: str
    fresh_ssp: bool
    features: str
    features_weights: str | None
    lr: float
    betas: tuple[float, float]
    batch_size: int
    epochs: int
    flip: bool


class Optimisers:
    """The generator's and the critic's optimisers, checkpointed as one by :func:`training.fit`."""

    def __init__(self, **optimisers):
        self.parts = optimisers

    def state_dict(self) -> dict:
        return {k: o.state_dict() for k, o in self.parts.items()}

    def load_state_dict(self, state: dict) -> None:
        for k, o in self.parts.items():
            o.load_state_dict(state[k])


def perturb(attack, images: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    """The attack's images of ``images``, batch by batch, without labels."""
    return torch.cat([attack(images[s:s + batch_size].to(device)).cpu() for s in range(0, len(images), batch_size)])


def batch_step(purifier: purifiers.Purifier, adv, clean, features, opt_g, opt_d) -> dict:
    """One critic update, then one generator update (the critic frozen); every term of both."""
    fake = purifier.generator(adv)
    critic = purifier.critic_terms(adv, clean, fake)
    opt_d.zero_grad(set_to_none=True)
    critic["loss"].backward()
    opt_d.step()
    purifier.critic.requires_grad_(False)
    terms = purifier.generator_terms(adv, clean, fake, features)
    opt_g.zero_grad(set_to_none=True)
    terms["loss"].backward()
    opt_g.step()
    purifier.critic.requires_grad_(True)
    return {**terms, "critic": critic["loss"]}


def train(purifier: purifiers.Purifier, images: torch.Tensor, make_pairs, features, cfg: PurifierTraining, seed: int,
          device, history_path, checkpoint_path, config_key: str, progress: bool = True) -> purifiers.Purifier:
    """Fit ``purifier`` to (``make_pairs(images)``, ``images``) through :func:`training.fit`."""
    opt_g = torch.optim.Adam(purifier.generator.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    opt_d = torch.optim.Adam(purifier.critic.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    flip = K.RandomHorizontalFlip(p=0.5)
    fixed = None if cfg.fresh_ssp else make_pairs(images)

    def epoch_step(epoch: int, gen: torch.Generator) -> dict:
        adv_all = make_pairs(images) if cfg.fresh_ssp else fixed
        purifier.train()
        sums, order = {}, torch.randperm(len(images), generator=gen)
        for s in range(0, len(images), cfg.batch_size):
            idx = order[s:s + cfg.batch_size]
            adv, clean = adv_all[idx].to(device), images[idx].to(device)
            if cfg.flip:
                adv, clean = flip(torch.cat([adv, clean], 1)).split(3, 1)
            for k, v in batch_step(purifier, adv, clean, features, opt_g, opt_d).items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(idx)
        return {k: v / len(images) for k, v in sums.items()}

    training.fit(purifier, Optimisers(generator=opt_g, critic=opt_d), None, cfg.epochs, epoch_step, checkpoint_path,
                 history_path, config_key, seed, "train_purifier", progress=progress)
    return purifier.eval()


@torch.no_grad()
def mean_psnr(transform, inputs: torch.Tensor, targets: torch.Tensor, device, batch_size: int = 256) -> float:
    """Mean PSNR (dB) between ``transform(inputs)`` (clamped to [0, 1]) and ``targets``."""
    values = []
    for s in range(0, len(inputs), batch_size):
        out = transform(inputs[s:s + batch_size].to(device)).clamp(0, 1).cpu()
        mse = (out - targets[s:s + batch_size]).pow(2).flatten(1).mean(1).clamp_min(1e-10)
        values.append(-10 * mse.log10())
    return float(torch.cat(values).mean())


def from_params(p: dict, args) -> dict:
    """The values of ``run`` that come from the validated params (and this job's ``args``): the
    one translation, used by the CLI and by :func:`workload`."""
    spec = entry(p["purifiers"], args.purifier, "purifier", "purifiers")
    return {"name": args.purifier, "spec": spec, "cfg": section(PurifierTraining, spec["train"]),
            "attack_spec": p["attack"]["instances"][spec["train"]["attack"]],
            "victim_cfg": section(victims.VictimConfig, p["victim"]), "seed": p["seed"]}


def run(*, name: str, spec: dict, cfg: PurifierTraining, attack_spec: dict, pool_path: str | Path,
        victim_path: str | Path, victim_cfg: victims.VictimConfig, seed: int, device, model_path: str | Path,
        history_path: str | Path, metrics_path: str | Path, progress: bool = True) -> dict:
    """Train purifier ``name`` on the pool's images and their perturbations; write its generator and metrics."""
    pool, images = pool_tensor(pool_path, "sample.pools.cae")
    victim = inference.prepare(victims.load(victim_path, victim_cfg), device)
    attack = attacks.build(attack_spec, victim)
    features = feature_network(cfg.features, cfg.features_weights, victim)
    torch.manual_seed(seed)
    purifier = purifiers.build(spec).to(device)
    key = config_digest(spec, cfg, attack_spec, seed, pool.attrs["checksum"], sha256_file(victim_path))
    make_pairs = lambda x: perturb(attack, x, cfg.batch_size * 8, device)  # noqa: E731
    torch.manual_seed(seed)
    train(purifier, images, make_pairs, features, cfg, seed, device, history_path,
          Path(model_path).with_suffix(".ckpt"), key, progress)
    purifiers.save_generator(model_path, spec, purifier)
    torch.manual_seed(seed + 1)
    adv = make_pairs(images)
    generator = purifier.generator.eval()
    metrics = {"n": len(images), "psnr_perturbed": round(mean_psnr(lambda x: x, adv, images, "cpu"), 4),
               "psnr_purified": round(mean_psnr(generator, adv, images, device), 4),
               "psnr_purified_clean": round(mean_psnr(generator, images, images, device), 4)}
    write_json(metrics_path, metrics)
    log.info("purifier %s: %s", name, metrics)
    return metrics


def workload(p: dict, job: scale.Job) -> list[scale.Load]:
    """The perturbations (once, or every epoch with ``fresh_ssp``) and ``epochs`` passes of one critic
    and one generator update per batch (generator, critic, perceptual features). Writes the
    fresh-weight generator."""
    job_cfg = from_params(p, job.args)
    spec, cfg = job_cfg["spec"], job_cfg["cfg"]
    size, n = p["sample"]["image_size"], p["sample"]["pools"]["cae"]["n"]
    victim = scale.trained_victim(p, job)
    if cfg.features == "vgg16":
        net = features = vgg16_relu3_3(None)
    else:
        net, features = victim, feature_network("victim", None, victim)
    purifier = purifiers.build(spec)
    purifiers.save_generator(job.path(job.args.model), spec, purifier)

    def step(adv):
        clean, fake = adv.flip(0), purifier.generator(adv)
        critic = purifier.critic_terms(adv, clean, fake.detach())["loss"]
        return critic + purifier.generator_terms(adv, clean, fake, features)["loss"]

    perturbed = n * (cfg.epochs if cfg.fresh_ssp else 1) + n
    return [scale.attack_load(cfg.attack, job_cfg["attack_spec"], victim, perturbed,
                              cfg.batch_size * 8, size),
            scale.Load("training", step, (purifier, net), "train", cfg.batch_size, n * cfg.epochs,
                       (3, size, size), slots=2)]
