"""Training mechanics shared by every trainer in the pipeline.

:func:`fit` runs epochs of a caller-supplied step and takes care of what every stage that
trains needs: per-epoch mean losses written to a CSV (declared as DVC plots), a progress bar,
a checkpoint after every epoch so that a killed job resumes where it stopped (and ends with
the same weights as an uninterrupted run: model, optimiser, scheduler and random-number
states are all restored), and a stop with an error naming the epoch and the loss term as soon
as a loss is NaN or infinite. :func:`scale_milestones` keeps a schedule's shape when the
number of epochs changes (Li, Angelov and Suri drop the rate at epochs 500 and 1000 of 1500).
"""

from __future__ import annotations

import csv
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch
from tqdm import tqdm

from .io import atomic_path, load_checkpoint

log = logging.getLogger(__name__)


class NonFiniteLoss(FloatingPointError):
    """A loss term became NaN or infinite."""


def scale_milestones(milestones: Iterable[int], reference_epochs: int, epochs: int) -> list[int]:
    """Milestones given for ``reference_epochs`` moved to the same fractions of ``epochs``."""
    return sorted({max(1, round(m * epochs / reference_epochs)) for m in milestones})


@dataclass(frozen=True)
class Optimisation:
    """The training options of a ``recovery.cae.<variant>`` / ``recovery.aae.<variant>`` section:
    ``optimizer`` sgd (with ``momentum``; Li, Angelov and Suri, Sec. IV-C) or adam, ``lr``,
    ``weight_decay``, ``batch_size``, ``epochs``, and lr x ``lr_gamma`` at ``lr_milestones``
    (given for ``lr_reference_epochs`` epochs, moved to the same fractions of ``epochs``);
    ``precision`` float32 or bfloat16 (mixed precision: see :meth:`autocast`)."""

    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    batch_size: int
    epochs: int
    lr_milestones: tuple[int, ...]
    lr_reference_epochs: int
    lr_gamma: float
    precision: str = "float32"

    def autocast(self, device) -> torch.autocast:
        """The step's forward under ``torch.autocast`` in bfloat16 when ``precision`` says so: convolutions
        run in bf16, weights, optimiser state and the loss terms (autoencoder.sse, kl_divergence) stay in
        float32. bf16 keeps float32's exponent range, so no loss scaling is needed."""
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16")

    @property
    def slots(self) -> int:
        """Optimiser tensors kept per weight: Adam's two moments, SGD's momentum buffer (if any)."""
        return 2 if self.optimizer == "adam" else int(self.momentum > 0)

    def build(self, parameters) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.MultiStepLR]:
        """The optimiser over ``parameters`` and its step schedule (stepped once per epoch)."""
        if self.optimizer == "sgd":
            opt = torch.optim.SGD(parameters, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        else:
            opt = torch.optim.Adam(parameters, lr=self.lr, weight_decay=self.weight_decay)
        milestones = [m for m in scale_milestones(self.lr_milestones, self.lr_reference_epochs, self.epochs)
                      if m < self.epochs]
        return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=self.lr_gamma)


def run_epoch(step: Callable[[torch.Tensor], dict], data: torch.Tensor, batch_size: int, gen: torch.Generator,
              device, opt: torch.optim.Optimizer) -> dict:
    """One pass over ``data`` in batches shuffled by ``gen``: ``step(batch) -> {term: tensor}`` with
    the total under ``loss``, one optimiser step each; returns the mean of every term."""
    sums: dict = {}
    order = torch.randperm(len(data), generator=gen)
    for s in range(0, len(data), batch_size):
        idx = order[s:s + batch_size]
        terms = step(data[idx].to(device))
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(idx)
    return {k: v / len(data) for k, v in sums.items()}


def kernel_context() -> str:
    """What decides the floating-point bits of an epoch on the CPU: torch's thread count, the CPUs
    this process may run on, and the instruction set torch dispatches to (logged every epoch, so
    two runs that differ can be told apart by their logs)."""
    cpus = sorted(os.sched_getaffinity(0))
    return (f"threads {torch.get_num_threads()}, cpus {','.join(map(str, cpus))}, "
            f"isa {torch.backends.cpu.get_cpu_capability()}")


def check_finite(losses: dict, epoch: int, what: str) -> None:
    """Raise :class:`NonFiniteLoss` naming the first NaN or infinite term."""
    for term, value in losses.items():
        if not math.isfinite(float(value)):
            raise NonFiniteLoss(f"{what}: loss term '{term}' is {float(value)} at epoch {epoch}")


def _write_history(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["epoch"])
        writer.writeheader()
        writer.writerows(rows)


def fit(model: torch.nn.Module, optimizer, scheduler, epochs: int,
        epoch_step: Callable[[int, torch.Generator], dict], checkpoint: str | Path, history: str | Path,
        config_key: str, seed: int, what: str, scheduler_per_epoch: bool = True,
        progress: bool = True) -> list[dict]:
    """Run ``epoch_step(epoch, generator) -> {term: mean value}`` for epochs 1..``epochs``.

    ``scheduler`` (or None) is checkpointed, and stepped once per epoch here unless
    ``scheduler_per_epoch`` is False (``epoch_step`` then steps it per batch). ``generator``
    is the one source of data-order randomness. ``checkpoint`` is written after every epoch and
    removed at the end; one with another ``config_key`` is ignored. The history CSV has a
    column ``epoch`` and one per term.
    """
    checkpoint, history = Path(checkpoint), Path(history)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    rows, start = [], 0
    if checkpoint.is_file():
        state = load_checkpoint(checkpoint, f"{what} checkpoint")
        if state.get("config_key") == config_key:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(state["scheduler"])
            gen.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            rows, start = state["history"], state["epoch"]
            log.info("%s: resuming from %s after epoch %d", what, checkpoint, start)
        else:
            log.info("%s: ignoring checkpoint %s of another configuration", what, checkpoint)
    for epoch in tqdm(range(start + 1, epochs + 1), initial=start, total=epochs, desc=what, disable=not progress):
        losses = epoch_step(epoch, gen)
        check_finite(losses, epoch, what)
        if scheduler is not None and scheduler_per_epoch:
            scheduler.step()
        rows.append({"epoch": epoch, **{k: round(float(v), 6) for k, v in losses.items()}})
        log.info("%s epoch %d: %s [%s]", what, epoch, ", ".join(f"{k} {float(v):.4f}" for k, v in losses.items()),
                 kernel_context())
        with atomic_path(checkpoint) as tmp:
            torch.save({"config_key": config_key, "epoch": epoch, "history": rows, "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict() if scheduler is not None else None,
                        "generator": gen.get_state(), "torch_rng": torch.get_rng_state()}, tmp)
    _write_history(history, rows)
    checkpoint.unlink(missing_ok=True)
    return rows
