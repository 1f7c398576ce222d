"""What a job of the DAG costs: its networks at the params' sizes, FLOPs per image, memory of one step.

Every stage module defines ``workload(p, job) -> list[Load]``: the steps its job repeats, built with
the stage's own builders and loss functions at the sizes of the params ``p`` (weights fresh: cost does
not depend on them). A training stage also writes its fresh-weight model where the DAG puts it under
``job.root``, so that the stages after it build their defences with the real loaders.
``benchmarks/scale.py`` walks dvc.yaml, calls each stage's ``workload`` and sums the loads.

How the figures are obtained (:func:`count`): the step runs on CPU at a small batch under
torch.utils.flop_counter's formulas (FLOPs are linear in the batch); the memory of one step
at the params' batch is estimated as weights + gradients and optimiser slots of the trained weights +
the input batch + the activations autograd saves for the backward pass (``saved_tensors_hooks`` at
the small batch, scaled linearly), or twice the largest activation for a forward-only step. Allocator
fragmentation, cuDNN workspaces and transient buffers are not counted; :func:`measure` runs the step
at the full batch on a device and reads ``torch.cuda.max_memory_allocated`` instead.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

MODES = ("train", "grad", "forward")


@dataclass(frozen=True)
class Job:
    """One instance of a stage: the ``args`` its command line parses to (``advrecover.cli``), so a
    workload reads the same flags the stage's handler does, and the directory ``root`` where the DAG's
    relative paths resolve."""

    stage: str
    args: argparse.Namespace
    root: Path

    def path(self, rel: str | Path) -> Path:
        """``rel`` under ``root``, its parent directory created (for the fresh-weight stand-ins)."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


@dataclass(frozen=True)
class Load:
    """One kind of step a job repeats ``images`` / ``batch`` times. ``step(x)`` runs it on a batch of
    images of ``shape`` and returns a tensor: the loss for ``train`` (backward to the trained weights,
    those with ``requires_grad``), the loss for ``grad`` (backward to the input only: attacks) or the
    output for ``forward``. ``modules``: every network the step runs. ``slots``: optimiser tensors
    per trained weight (SGD with momentum 1, Adam 2). ``images``: image-steps over the whole job.
    ``precision``: float32 or bfloat16 (the step's autocast, for the throughput it is costed at)."""

    name: str
    step: Callable[[torch.Tensor], torch.Tensor]
    modules: tuple[nn.Module, ...]
    mode: str
    batch: int
    images: int
    shape: tuple[int, ...]
    slots: int = 0
    precision: str = "float32"

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"load {self.name}: mode must be one of {MODES}, got {self.mode!r}")


@dataclass(frozen=True)
class Figures:
    """Per load: weights, FLOPs per image of one step (forward and backward), estimated peak bytes of
    one step at the load's batch."""

    parameters: int
    flops_per_image: float
    peak_bytes: float


class FlopCount(TorchDispatchMode):
    """The FLOPs of every operator run inside it, by torch.utils.flop_counter's formulas (its
    FlopCounterMode's per-module tracking fails inside custom autograd Functions such as BPDA)."""

    def __init__(self):
        from torch.utils.flop_counter import flop_registry  # imports torch.export: here, not in every stage job

        super().__init__()
        self.total, self.formulas = 0, flop_registry

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = self.formulas.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def parameters(load: Load) -> list[nn.Parameter]:
    """The distinct weights of a load's networks."""
    seen, out = set(), []
    for m in load.modules:
        for w in m.parameters():
            if id(w) not in seen:
                seen.add(id(w))
                out.append(w)
    return out


def _run(load: Load, x: torch.Tensor) -> None:
    if load.mode == "forward":
        with torch.no_grad():
            load.step(x)
    elif load.mode == "grad":
        torch.autograd.grad(load.step(x.requires_grad_(True)).sum(), x)
    else:
        load.step(x).sum().backward()


class LargestOutput:
    """Within it: the bytes of the largest tensor any module of ``load`` returns (forward hooks)."""

    def __init__(self, load: Load):
        self.modules, self.bytes, self.handles = [m for net in load.modules for m in net.modules()], 0, []

    def hook(self, _module, _inputs, out):
        if isinstance(out, torch.Tensor):
            self.bytes = max(self.bytes, out.nelement() * out.element_size())

    def __enter__(self):
        self.handles = [m.register_forward_hook(self.hook) for m in self.modules]
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


def count(load: Load, batch: int = 2) -> Figures:
    """FLOPs per image and the estimated peak memory at ``load.batch``, from a run at ``batch`` on CPU."""
    weights = parameters(load)
    weight_storage = {w.untyped_storage().data_ptr() for w in weights}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in weight_storage:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    x = torch.rand(batch, *load.shape, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    with FlopCount() as flops, LargestOutput(load) as largest, \
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        _run(load, x)
    for w in weights:
        w.grad = None
    activations = sum(saved.values()) if load.mode != "forward" else 2 * largest.bytes
    trained = sum(w.numel() * w.element_size() for w in weights if w.requires_grad) if load.mode == "train" else 0
    weight_bytes = sum(w.numel() * w.element_size() for w in weights)
    per_image = (activations + x[0].nelement() * x.element_size()) / batch
    return Figures(parameters=sum(w.numel() for w in weights), flops_per_image=flops.total / batch,
                   peak_bytes=weight_bytes + trained * (1 + load.slots) + per_image * load.batch)


def measure(load: Load, device: torch.device, repeats: int = 3) -> tuple[float, float | None]:
    """Seconds per step at the load's full batch on ``device`` (after one warm-up step), and the peak
    bytes CUDA allocated (None on other devices)."""
    for m in load.modules:
        m.to(device)
    x = torch.rand(load.batch, *load.shape, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _run(load, x.clone())
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        _run(load, x.clone())
    sync()
    seconds = (time.perf_counter() - start) / repeats
    for m in load.modules:
        m.to("cpu")
    for w in parameters(load):
        w.grad = None
    return seconds, (torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None)


def classes(p: dict) -> int:
    """How many classes the victim has, from the pool it is trained on (or the test pool): the count
    a source kind implies (ImageNet-R 200, CIFAR-10 10, the built-in tasks 10), or the class folders."""
    from .data import builtin

    pools = p["sample"]["pools"]
    cfg = pools["victim"] if p["victim"]["mode"] == "train" else pools[p["evaluate"]["pool"]]
    known = {"imagenet_r": 200, "cifar10": 10, "builtin": len(builtin.DIGIT_CLASSES)}
    if cfg["source"] in known:
        return known[cfg["source"]]
    folder = Path(cfg.get("path", ""))
    if cfg["source"] == "imagefolder" and folder.is_dir():
        return sum(1 for d in folder.iterdir() if d.is_dir())
    raise ValueError(f"cannot tell the victim's class count from source {cfg['source']!r}: known for "
                     f"{sorted(known)}, or an imagefolder whose path exists")


def victim(p: dict, n_classes: int):
    """The victim the params describe, fresh weights, in eval mode (the attacked network)."""
    from .config import section
    from .models import victim as victims

    cfg = section(victims.VictimConfig, p["victim"])
    return victims.build(replace(cfg, imagenet_classes=None), [f"c{i}" for i in range(n_classes)]).eval()


def trained_victim(p: dict, job: Job) -> nn.Module:
    """The victim the ``victim`` stage's workload wrote, read as the stages read it (``--victim``)."""
    from .config import section
    from .models import victim as victims

    return victims.load(job.path(job.args.victim), section(victims.VictimConfig, p["victim"]))


def attack_load(name: str, spec: dict, victim: nn.Module, images: int, batch: int, image_size: int) -> Load:
    """An attack instance of :mod:`advrecover.attacks` on ``images`` images: its declared ``passes``
    (gradient evaluations per image at most) through the network it differentiates: the victim (SSAH's
    penultimate features are counted as the whole victim) or its own feature network (``network: vgg16``)."""
    from .attacks import REGISTRY
    from .attacks.features import vgg16_relu3_3

    classes = victim(torch.zeros(1, 3, image_size, image_size)).shape[1]
    passes = REGISTRY.passes(spec, features=3 * image_size ** 2, classes=classes)
    net = vgg16_relu3_3(None) if spec.get("network") == "vgg16" else victim
    return Load(f"{name}: {passes} gradients per image", net, (net,), "grad", batch, images * passes,
                (3, image_size, image_size))
