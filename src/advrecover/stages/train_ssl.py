"""Stage ``train_ssl``: one self-supervised head of ``ssl.tasks`` (contrastive, rotation, inpainting:
:mod:`advrecover.ssl`) on the frozen victim's features, trained without labels on the clean images
of the pool ``ssl.pool`` (default the ``aae`` pool). Adam (``ssl.train``: lr, batch size, epochs;
Lawhon and Ducrest: 1e-3, 100, 200) through :func:`advrecover.training.fit`. Only images are read:
the pool's labels, where it has any, never reach the head. The test-time reversal defence
(``advrecover.defences.reversal``) minimises these heads' losses at test time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import inference, scale, ssl, training
from ..config import entry, section
from ..data.tensors import pool_tensor
from ..io import config_digest, sha256_file, write_json
from ..models import victim as victims
from ..models.features import victim_features

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SSLTraining:
    """``ssl.train``: Adam's ``lr``, ``batch_size`` and ``epochs``, the same for every head."""

    lr: float
    batch_size: int
    epochs: int


def mean_loss(head: ssl.Task, features, images: torch.Tensor, batch_size: int, seed: int, device) -> float:
    """The head's mean loss over ``images`` (seeded: a random task draws the same views each time)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        losses = [float(head.loss(features, images[s:s + batch_size].to(device))) * len(images[s:s + batch_size])
                  for s in range(0, len(images), batch_size)]
    return sum(losses) / len(images)


def train(head: ssl.Task, features, images: torch.Tensor, cfg: SSLTraining, seed: int, device, history_path,
          checkpoint_path, config_key: str, progress: bool = True) -> ssl.Task:
    """Fit ``head`` to its self-supervised loss on ``images`` through :func:`training.fit`."""
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr)

    def epoch_step(epoch: int, gen: torch.Generator) -> dict:
        head.train()
        return training.run_epoch(lambda x: {"loss": head.loss(features, x)}, images, cfg.batch_size, gen, device, opt)

    training.fit(head, opt, None, cfg.epochs, epoch_step, checkpoint_path, history_path, config_key, seed, "train_ssl",
                 progress=progress)
    return head.eval()


def from_params(p: dict, args) -> dict:
    """The values of ``run`` that come from the validated params (and this job's ``args``): the
    one translation, used by the CLI and by :func:`workload`."""
    return {"name": args.task, "spec": entry(p["ssl"]["tasks"], args.task, "task", "ssl.tasks"),
            "cfg": section(SSLTraining, p["ssl"]["train"]), "victim_cfg": section(victims.VictimConfig, p["victim"]),
            "seed": p["seed"]}


def run(*, name: str, spec: dict, cfg: SSLTraining, pool_path: str | Path, victim_path: str | Path,
        victim_cfg: victims.VictimConfig, seed: int, device, model_path: str | Path, history_path: str | Path,
        metrics_path: str | Path, progress: bool = True) -> dict:
    """Train head ``name`` on the pool's images; write it and its loss before and after training."""
    pool, images = pool_tensor(pool_path, "ssl.pool")
    features = victim_features(inference.prepare(victims.load(victim_path, victim_cfg), device))
    dim, size = features(images[:1].to(device)).shape[1], images.shape[-1]
    torch.manual_seed(seed)
    head = ssl.build(spec, dim, size).to(device)
    before = mean_loss(head.eval(), features, images, cfg.batch_size, seed, device)
    key = config_digest(spec, cfg, seed, pool.attrs["checksum"], sha256_file(victim_path))
    train(head, features, images, cfg, seed, device, history_path, Path(model_path).with_suffix(".ckpt"), key,
          progress)
    ssl.save_head(model_path, spec, head, dim, size)
    metrics = {"n": len(images), "loss_untrained": round(before, 6),
               "loss": round(mean_loss(head, features, images, cfg.batch_size, seed, device), 6)}
    write_json(metrics_path, metrics)
    log.info("self-supervised head %s: %s", name, metrics)
    return metrics


def workload(p: dict, job: scale.Job) -> list[scale.Load]:
    """``epochs`` Adam passes of the head's loss over the pool (the frozen victim's features of every
    view), and the loss before and after. Writes the fresh-weight head."""
    job_cfg = from_params(p, job.args)
    spec, cfg = job_cfg["spec"], job_cfg["cfg"]
    size, n = p["sample"]["image_size"], p["sample"]["pools"][p["ssl"]["pool"]]["n"]
    victim = scale.trained_victim(p, job)
    features = victim_features(victim)
    dim = features(torch.zeros(1, 3, size, size)).shape[1]
    head = ssl.build(spec, dim, size)
    ssl.save_head(job.path(job.args.model), spec, head, dim, size)
    shape = (3, size, size)
    return [scale.Load("training", lambda x: head.loss(features, x), (head, victim), "train", cfg.batch_size,
                       n * cfg.epochs, shape, slots=2),
            scale.Load("loss before and after", lambda x: head.loss(features, x), (head, victim), "forward",
                       cfg.batch_size, 2 * n, shape)]
