"""Resolve the ``device`` parameter: ``auto`` picks CUDA when present, else the CPU."""

from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger(__name__)


def resolve(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device: {name!r} was requested but CUDA is not available (use 'auto' or 'cpu')")
    return torch.device(name)


def use_allocated_cpus() -> int:
    """Run torch's CPU kernels on every CPU this process may use (its affinity mask: all cores
    locally and under DVC, the SLURM allocation on a cluster). Snakemake exports
    OMP_NUM_THREADS=1 to single-threaded jobs; float reductions then differ in the last bits
    from a DVC run, so the thread count is taken from the allocation rather than the runner.
    """
    n = len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    log.info("torch CPU threads: %d (affinity mask; OMP_NUM_THREADS=%s)", n, os.environ.get("OMP_NUM_THREADS"))
    return n
