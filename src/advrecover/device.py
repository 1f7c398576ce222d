"""Resolve the ``device`` parameter: ``auto`` picks CUDA when present, else the CPU."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def resolve(name: str) -> torch.device:
    import torch  # here, not at the top: the Snakefile imports this module for requested_threads

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device: {name!r} was requested but CUDA is not available (use 'auto' or 'cpu')")
    return torch.device(name)


THREADS_VARIABLE = "ADVRECOVER_THREADS"


def use_allocated_cpus() -> int:
    """Run torch's CPU kernels on ``$ADVRECOVER_THREADS`` threads when it is set (``make run``: 1,
    two jobs side by side on two cores), else on every CPU this process may use (its affinity mask:
    all cores under DVC, the SLURM allocation on a cluster). The count is never taken from
    OMP_NUM_THREADS, which Snakemake sets per runner: float reductions differ in the last bits
    with the thread count, so both runners must get it from the same place.
    """
    import torch

    n = requested_threads() or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    log.info("torch CPU threads: %d (%s=%s, affinity mask of %d)", n, THREADS_VARIABLE,
             os.environ.get(THREADS_VARIABLE), len(os.sched_getaffinity(0)))
    return n


def requested_threads() -> int | None:
    """``$ADVRECOVER_THREADS`` as a positive count, None when unset (also the Snakefile's job threads)."""
    value = os.environ.get(THREADS_VARIABLE)
    if value is None:
        return None
    if not (value.isdigit() and int(value) > 0):
        raise ValueError(f"{THREADS_VARIABLE}={value!r}: expected a positive number of torch CPU threads per job")
    return int(value)
