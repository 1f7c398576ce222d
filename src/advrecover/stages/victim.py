"""Stage ``victim``: train (or load) the classifier the attacks target, and measure it.

``train`` fits the small ResNet on the ``victim`` pool, which is disjoint from ``cae``,
``aae`` and ``test``, so the accuracies written to ``metrics/victim.json`` on those pools are
held-out figures. ``checkpoint`` loads a state dict for the same ResNet; ``torchvision``
wraps a torchvision architecture with weights the user has on disk.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.pools import POOL_ORDER, read_pool
from ..data.tensors import to_tensor
from .. import inference, scale, training
from ..config import section
from ..io import atomic_path, config_digest, write_json
from ..models import victim as victims
from .plugins import module_files

log = logging.getLogger(__name__)


def augmenter(kind: str, size: int):
    """The training augmentation ``kind`` in kornia: ``crop`` translates each image by up to 2 pixels
    (reflect padding), ``crop_flip`` also flips half of them horizontally (not for digits), ``none``."""
    import kornia.augmentation as K

    ops = {"none": [], "crop": [K.RandomCrop((size, size), padding=2, padding_mode="reflect")]}
    ops["crop_flip"] = ops["crop"] + [K.RandomHorizontalFlip()]
    return K.AugmentationSequential(*ops[kind]) if ops[kind] else None


def accuracy(model, images: np.ndarray, labels: np.ndarray, device, batch_size: int) -> float:
    """Top-1 accuracy of ``model`` on uint8 images (through :func:`advrecover.inference.predict`)."""
    pred = inference.predict(inference.prepare(model, device), to_tensor(images), batch_size, device)
    return float((pred == labels).sum()) / max(1, len(images))


def train(model, images: np.ndarray, labels: np.ndarray, cfg: victims.VictimConfig, seed: int, device,
          history_path: Path, checkpoint_path: Path, config_key: str = "", progress: bool = True, adversary=None,
          what: str = "victim"):
    """SGD (Nesterov, momentum 0.9) with a one-cycle learning rate, through :func:`training.fit`:
    per-epoch loss and accuracy to CSV, a checkpoint per epoch, NaN detection. With ``adversary``
    (``(x, y, epoch) -> x'``, e.g. a torchattacks attack on ``model``) every batch is replaced by
    its adversarial version before the step: adversarial training (Madry et al. 2018)."""
    x_all, y_all = to_tensor(images), torch.from_numpy(labels)
    if hasattr(model, "normalize"):  # our ResNet normalises by its training set's statistics; a module its own way
        model.normalize.mean.copy_(x_all.mean((0, 2, 3)).view(1, -1, 1, 1))
        model.normalize.std.copy_(x_all.std((0, 2, 3)).view(1, -1, 1, 1))
    model.to(device, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True,
                          weight_decay=cfg.weight_decay)
    steps = (len(x_all) + cfg.batch_size - 1) // cfg.batch_size
    augment = augmenter(cfg.augment, x_all.shape[-1])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.epochs * steps)

    def epoch_step(epoch: int, gen: torch.Generator) -> dict:
        model.train()
        order = torch.randperm(len(x_all), generator=gen)
        total, correct, seen = 0.0, 0, 0
        for b in range(steps):
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x, y = x_all[idx], y_all[idx]
            if augment is not None:
                x = augment(x)
            x, y = x.to(device), y.to(device)
            if adversary is not None:
                x = adversary(x, y, epoch)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        return {"loss": total / seen, "train_accuracy": correct / seen}

    training.fit(model, opt, sched, cfg.epochs, epoch_step, checkpoint_path, history_path, config_key, seed,
                 what, scheduler_per_epoch=False, progress=progress)
    return model


def from_params(p: dict, args) -> dict:
    """The values of ``run`` that come from the validated params (and this job's ``args``): the
    one translation, used by the CLI and by :func:`workload`."""
    return {"cfg": section(victims.VictimConfig, p["victim"]), "seed": p["seed"]}


def loaded(cfg: victims.VictimConfig, pools: dict, history_path) -> tuple:
    """The victim of modes checkpoint, torchvision and module, its weights read from a local file, and
    the class names of its pools; an empty training history."""
    reference = pools["test"] if pools["test"].labelled else pools["victim"]
    class_names = reference.class_names
    model = victims.build(cfg, class_names)
    if cfg.mode in ("checkpoint", "module"):
        if not cfg.checkpoint:
            raise ValueError(f"victim.checkpoint: a local state-dict path is required when victim.mode={cfg.mode}")
        victims.load_weights(model, victims.load_state(cfg.checkpoint, "victim.checkpoint"), cfg.checkpoint,
                             "victim.checkpoint")
    else:
        if not cfg.torchvision_weights:
            raise ValueError("victim.torchvision_weights: a local weights file is required when "
                             "victim.mode=torchvision (weights are never downloaded)")
        backbone = model.model[1] if isinstance(model, victims.ClassSubset) else model[1]
        victims.load_weights(backbone, victims.load_state(cfg.torchvision_weights, "victim.torchvision_weights"),
                             cfg.torchvision_weights, "victim.torchvision_weights")
    if cfg.mode == "module":
        with torch.no_grad():
            classes = model.eval()(to_tensor(reference.images[:1])).shape[-1]
        if classes != len(class_names):
            raise ValueError(f"victim.module: {cfg.module} returns {classes} logits, the pools have "
                             f"{len(class_names)} classes (victim.module_args)")
    with atomic_path(history_path) as tmp:
        tmp.write_text("epoch,loss,train_accuracy\n")
    return model, class_names


def run(*, cfg: victims.VictimConfig, seed: int, device, pools_dir: str | Path, model_path: str | Path,
        metrics_path: str | Path, history_path: str | Path, progress: bool = True) -> dict:
    """Train or load the victim, write its state dict, and its clean accuracy on every labelled pool."""
    torch.manual_seed(seed)
    pools_dir = Path(pools_dir)
    pools = {name: read_pool(pools_dir / f"{name}.h5") for name in POOL_ORDER}
    if cfg.mode == "train":
        train_pool = pools.get("victim")
        if train_pool is None or not len(train_pool.labels) or not train_pool.labelled:
            raise ValueError("victim.mode=train needs a labelled, non-empty 'victim' pool "
                             "(sample.pools.victim: a labelled source and n > 0)")
        class_names = train_pool.class_names
        model = victims.build(cfg, class_names)
        key = config_digest(cfg, seed, train_pool.attrs["checksum"])
        model = train(model, train_pool.images, train_pool.labels, cfg, seed, device, Path(history_path),
                      Path(model_path).with_suffix(".ckpt"), key, progress)
    else:
        model, class_names = loaded(cfg, pools, history_path)
        model.to(device)
    code = config_digest(module_files(cfg.module.partition(":")[0])) if cfg.mode == "module" else None
    victims.save(model_path, model, cfg, code)
    metrics = {"mode": cfg.mode, "classes": len(class_names), "accuracy": {}}
    for name, pool in pools.items():
        if pool.labelled and pool.class_names == list(class_names):
            metrics["accuracy"][name] = round(accuracy(model, pool.images, pool.labels, device,
                                                       cfg.eval_batch_size), 6)
            log.info("victim clean accuracy on pool %s: %.4f", name, metrics["accuracy"][name])
    write_json(metrics_path, metrics)
    return metrics


def workload(p: dict, job: scale.Job) -> list[scale.Load]:
    """Mode train: SGD steps over the victim pool for ``epochs``; every mode: the clean pass over the
    pools. Writes the fresh-weight victim where the stage writes the trained one."""
    cfg = from_params(p, job.args)["cfg"]
    size, pools = p["sample"]["image_size"], p["sample"]["pools"]
    model = scale.victim(p, scale.classes(p))
    victims.save(job.path(job.args.model), model, cfg)
    shape = (3, size, size)
    loads = [scale.Load("clean accuracy on the pools", model, (model,), "forward", cfg.eval_batch_size,
                        sum(c["n"] for c in pools.values()), shape)]
    if cfg.mode == "train":
        labels = lambda x: torch.randint(model.fc.out_features, (len(x),))  # noqa: E731
        loads.insert(0, scale.Load("training", lambda x: F.cross_entropy(model(x), labels(x)), (model,), "train",
                                   cfg.batch_size, pools["victim"]["n"] * cfg.epochs, shape, slots=1))
    return loads
