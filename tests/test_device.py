"""advrecover.device: the torch thread count of a stage and the device it runs on."""

from __future__ import annotations

import os

import pytest
import torch

from advrecover.device import THREADS_VARIABLE, resolve, use_allocated_cpus


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_the_thread_count_comes_from_the_variable_when_set(monkeypatch, restore_threads):
    monkeypatch.setenv(THREADS_VARIABLE, "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # what Snakemake exports is never read
    assert use_allocated_cpus() == 1 == torch.get_num_threads()


def test_without_the_variable_every_allocated_cpu_is_used(monkeypatch, restore_threads):
    monkeypatch.delenv(THREADS_VARIABLE, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    n = len(os.sched_getaffinity(0))
    assert use_allocated_cpus() == n == torch.get_num_threads()


@pytest.mark.parametrize("value", ["0", "-1", "two", ""])
def test_a_bad_thread_count_is_refused_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(THREADS_VARIABLE, value)
    with pytest.raises(ValueError, match=f"{THREADS_VARIABLE}={value!r}"):
        use_allocated_cpus()


def test_cuda_requested_without_cuda_is_refused():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve("cuda:0")
    assert resolve("auto") == torch.device("cpu")
