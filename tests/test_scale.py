"""Cost accounting (advrecover.scale) and benchmarks/scale.py: FLOPs by formula, memory terms, every
stage covered, the memory limit enforced."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math

import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from advrecover import adaptive, attacks, scale
from helpers import REPO


def conv_load(mode: str, batch: int = 8, slots: int = 0) -> scale.Load:
    torch.manual_seed(0)
    conv = nn.Conv1d(3, 8, 7, padding=3)
    return scale.Load("conv", conv, (conv,), mode, batch, 100, (3, 32), slots)


def test_flops_follow_the_convolution_formula():
    forward = 2 * 3 * 8 * 7 * 32  # multiply-adds x 2, per image (bias not counted)
    assert scale.count(conv_load("forward")).flops_per_image == forward
    assert scale.count(conv_load("grad")).flops_per_image == 2 * forward  # forward + gradient to the input
    assert scale.count(conv_load("train")).flops_per_image == 2 * forward  # + gradient to the weights only


def test_memory_is_weights_plus_optimiser_state_plus_activations_per_image():
    weights = (3 * 8 * 7 + 8) * 4
    small, large = scale.count(conv_load("train", batch=8)), scale.count(conv_load("train", batch=16))
    per_image = (large.peak_bytes - small.peak_bytes) / 8
    assert per_image >= 3 * 32 * 4  # at least the input the weight gradient needs
    assert small.peak_bytes == pytest.approx(2 * weights + 8 * per_image)  # weights + their gradients
    assert scale.count(conv_load("train", slots=2)).peak_bytes - small.peak_bytes == pytest.approx(2 * weights)
    assert scale.count(conv_load("grad")).peak_bytes < small.peak_bytes  # no gradients kept for the weights


def test_every_attack_declares_its_gradient_passes():
    assert all(callable(attacks.REGISTRY.trait(m, "passes")) for m in attacks.REGISTRY.builders)
    passes = functools.partial(attacks.REGISTRY.passes, features=3072, classes=10)
    assert passes({"method": "jsma", "theta": 1.0, "gamma": 0.02}) == math.ceil(3072 * 0.02 / 2) * 10
    assert passes({"method": "cw", "c": 2, "kappa": 2, "steps": 500, "lr": 0.01}) == 500
    assert passes({"method": "deepfool"}) == 50 * 5  # the builder's defaults: steps 50, 5 candidate classes
    assert adaptive.REGISTRY.passes({"method": "apgd", "loss": "ce"}) == 50
    with pytest.raises(TypeError, match="passes"):
        attacks.REGISTRY.register("undeclared")


def test_every_stage_module_declares_its_workload():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    modules = {stage["cmd"].split()[1] for stage in stages.values()}
    missing = [m for m in modules if not hasattr(importlib.import_module(f"advrecover.stages.{m}"), "workload")]
    assert missing == []


def script():
    spec = importlib.util.spec_from_file_location("scale_script", REPO / "benchmarks/scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_script_costs_every_job_and_fails_a_job_over_the_limit(tmp_path, capsys):
    csv = tmp_path / "scale.csv"
    assert script().main(["--params", str(REPO / "configs/tiny.yaml"), "--csv", str(csv)]) == 0
    frame = pd.read_csv(csv)
    stages = {job.split("@")[0] for job in frame.job}
    assert stages == {"victim", "victim_robust", "attack", "train_cae", "train_aae", "train_aae_mixed",
                      "train_purifier", "train_ssl", "train_diffusion", "evaluate", "adaptive"}  # not the merges
    assert (frame.GFLOP_per_image > 0).all() and (frame.peak_GB > 0).all()
    assert "whole DAG" in capsys.readouterr().out
    limit = frame.peak_GB.median()
    assert script().main(["--params", str(REPO / "configs/tiny.yaml"), "--limit-gb", str(limit)]) == 1
    over = [line for line in capsys.readouterr().err.splitlines() if line.startswith("OVER")]
    assert len(over) == (frame.peak_GB > limit).sum() > 0


@pytest.mark.slow
def test_measure_times_every_load_on_the_device(tmp_path):
    csv = tmp_path / "scale.csv"
    assert script().main(["--params", str(REPO / "configs/tiny.yaml"), "--measure", "--csv", str(csv)]) == 0
    hours = pd.read_csv(csv).GPU_hours
    assert (hours > 0).all() and hours.map(math.isfinite).all()
