"""Stage ``victim_robust``: the adversarial-training reference, the victim's architecture trained on its
own adversarial examples (Madry et al. 2018) on the ``victim`` pool.

Every training batch is replaced by the images of the attack instance ``robust_victim.attack``
against the model being trained (Wong, Rice and Kolter 2020's fast FGSM with a random start and
step 1.25 eps in the quick profile; PGD in the paper preset), computed in training mode as
their code does, its budget warmed up over the first ``robust_victim.warmup`` epochs (Pang et
al. 2021, "Bag of tricks for adversarial training"). It starts from fresh weights (``init:
scratch``, the paper preset) or from the trained victim (``init: victim``: adversarial
fine-tuning, Jeddi et al. 2020, the quick profile: on the built-in digits, training from scratch
at 8/255 stayed at chance for 12 epochs). Architecture and optimiser are the ``victim``
params' (our ResNet, or a module victim's own class), with ``robust_victim.epochs`` and peak learning rate
``robust_victim.lr``. Written self-describing (``victims.save_classifier``); the defence
``adversarial_training`` deploys it as its own classifier.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import attacks, scale
from ..config import section
from ..data.pools import POOL_ORDER, read_pool
from ..io import config_digest, sha256_file, write_json
from ..models import victim as victims
from .victim import accuracy, train

log = logging.getLogger(__name__)


def from_params(p: dict, args) -> dict:
    """The values of ``run`` that come from the validated params (and this job's ``args``): the
    one translation, used by the CLI and by :func:`workload`."""
    r = p["robust_victim"]
    return {"cfg": section(victims.VictimConfig, p["victim"]), "attack_spec": r["attack"], "epochs": r["epochs"],
            "warmup": r["warmup"], "init": r["init"], "lr": r["lr"], "seed": p["seed"]}


def initial(cfg: victims.VictimConfig, init: str, victim_path, class_names, seed: int):
    """The classifier to train and what it starts from: fresh weights (``scratch``) or the ``victim``
    stage's (its file's digest)."""
    torch.manual_seed(seed)
    model = victims.build(cfg, class_names)
    if init == "scratch":
        return model, "scratch"
    victims.load_weights(model, victims.victim_weights(victim_path, cfg), victim_path, "victim model")
    return model, sha256_file(victim_path)


def _architecture(cfg: victims.VictimConfig) -> str:
    """The mode that builds the robust classifier: a module victim's own class, else our ResNet."""
    return "module" if cfg.mode == "module" else "train"


def warmed_up(attack, warmup: int):
    """``(x, y, epoch) -> x'``: ``attack`` with its ``eps`` and ``alpha`` scaled by ``epoch / warmup``
    until epoch ``warmup`` (1-based), at full budget after."""
    full = {k: getattr(attack, k) for k in ("eps", "alpha") if hasattr(attack, k)}

    def adversary(x, y, epoch: int):
        for k, v in full.items():
            setattr(attack, k, v * min(1.0, epoch / warmup) if warmup else v)
        return attack(x, y)
    return adversary


def run(*, cfg: victims.VictimConfig, attack_spec: dict, epochs: int, warmup: int, init: str, lr: float, seed: int,
        device, victim_path: str | Path, pools_dir: str | Path,
        model_path: str | Path, metrics_path: str | Path, history_path: str | Path, progress: bool = True) -> dict:
    """Train the robust classifier; write it, its per-epoch history and its clean accuracy per labelled pool."""
    pools = {name: read_pool(Path(pools_dir) / f"{name}.h5") for name in POOL_ORDER}
    train_pool = pools["victim"]
    if not len(train_pool.labels) or not train_pool.labelled:
        raise ValueError("victim_robust needs a labelled, non-empty 'victim' pool (sample.pools.victim)")
    cfg = replace(cfg, mode=_architecture(cfg), epochs=epochs, lr=lr)
    model, start = initial(cfg, init, victim_path, train_pool.class_names, seed)
    model.to(device)  # torchattacks reads the device at construction
    adversary = attacks.build(attack_spec, model)
    adversary.set_model_training_mode(model_training=True)
    key = config_digest(cfg, attack_spec, warmup, start, seed, train_pool.attrs["checksum"])
    train(model, train_pool.images, train_pool.labels, cfg, seed, device, Path(history_path),
          Path(model_path).with_suffix(".ckpt"), key, progress, adversary=warmed_up(adversary, warmup),
          what="victim_robust")
    model.eval()
    victims.save_classifier(model_path, model, cfg)
    metrics = {"attack": attack_spec, "accuracy": {}}
    for name, pool in pools.items():
        if pool.labelled and pool.class_names == list(train_pool.class_names):
            metrics["accuracy"][name] = round(accuracy(model, pool.images, pool.labels, device, cfg.eval_batch_size), 6)
    write_json(metrics_path, metrics)
    log.info("robust victim clean accuracy: %s", metrics["accuracy"])
    return metrics


def workload(p: dict, job: scale.Job) -> list[scale.Load]:
    """Per epoch over the victim pool: the attack's gradients against the model in training, then one
    SGD step per batch. Writes the fresh-weight classifier where the stage writes the trained one."""
    job_cfg = from_params(p, job.args)
    cfg = replace(job_cfg["cfg"], mode=_architecture(job_cfg["cfg"]), epochs=job_cfg["epochs"])
    size, n = p["sample"]["image_size"], p["sample"]["pools"]["victim"]["n"]
    model = victims.build(cfg, [f"c{i}" for i in range(scale.classes(p))])
    victims.save_classifier(job.path(job.args.model), model, cfg)
    labels = lambda x: torch.randint(scale.classes(p), (len(x),))  # noqa: E731
    return [scale.attack_load("adversarial examples", job_cfg["attack_spec"], model, n * cfg.epochs,
                              cfg.batch_size, size),
            scale.Load("training", lambda x: F.cross_entropy(model(x), labels(x)), (model,), "train", cfg.batch_size,
                       n * cfg.epochs, (3, size, size), slots=1)]
