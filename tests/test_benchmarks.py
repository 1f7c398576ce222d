"""Every script under benchmarks/ runs, at tiny sizes, on the tiny DAG's outputs (scale.py has its
own tests in test_scale.py): a benchmark that crashes is found here, not by its next reader."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import yaml

from advrecover import params as params_mod
from advrecover.models import diffusion
from helpers import REPO, sh, tiny_dag

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """The tiny DAG, complete, with a reversal row (its head is among the tiny DAG's outputs)."""
    ws = tiny_dag(tmp_path_factory, "snakemake")
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["evaluate"]["defences"]["reversal_contrastive"] = {"method": "reversal", "tasks": {"contrastive": 1.0},
                                                              "steps": 1}
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return ws


def run(ws, *args):
    return sh([sys.executable, *args], ws, timeout=600).stdout


def test_attacks(ws):
    out = run(ws, "benchmarks/attacks.py", "--n", "8", "--reference-n", "2", "--memory-n", "8", "--repeats", "1",
              "--seconds", "0", "--max-repeats", "1", "--attacks", "fgsm")
    assert "fgsm" in out


def test_test_time(ws):
    out = run(ws, "benchmarks/test_time.py", "--n", "2", "--steps", "1")
    assert "| reversal_contrastive | steps 1 |" in out
    assert "| diffpure | t_star 10 steps 2 checkpointed False |" in out and "failed" not in out


def test_test_time_costs_the_paper_presets_diffpure_on_its_architecture():
    """The paper setting (too slow for a CPU test at 100 steps): the paper preset's row and Ho et
    al.'s CIFAR-10 U-Net (no pretrained directory here), with fresh weights."""
    spec = importlib.util.spec_from_file_location("test_time", REPO / "benchmarks/test_time.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    defence = module.paper_diffpure()
    paper = params_mod.read(REPO / "configs/paper.yaml")["evaluate"]["defences"]["diffpure"]
    assert (defence.t_star, len(defence.timesteps)) == (paper["t_star"], paper["steps"]) == (100, 100)
    assert list(defence.unet.config.block_out_channels) == diffusion.CIFAR10_DDPM["block_out_channels"]


def test_pipeline(ws):
    out = run(ws, "benchmarks/pipeline.py")
    assert "victim clean accuracy" in out and "total" in out


def test_dag(ws):
    out = run(ws, "benchmarks/dag.py", "--repeats", "1")
    assert "snakemake -n" in out and "dvc status" in out


def test_cascade_keeps_the_worst_case_of_the_tiny_deterministic_defences(ws, tmp_path):
    """The cascade (each further attack of a route only on the images still robust) on the tiny
    configuration's deterministic defences, one image per batch (every attack then sees the same
    input in both modes): the per-image worst case equals the full run's, with fewer forward passes."""
    import pandas as pd

    from advrecover import defences

    names = [d for d, spec in yaml.safe_load((ws / "params.yaml").read_text())["evaluate"]["defences"].items()
             if not defences.adaptive_needs(spec)["random"]]
    assert {"none", "cae_aae"} <= set(names)
    run(ws, "benchmarks/cascade.py", "--defences", *names, "--batch-size", "1", "--checks-n", "2",
        "--csv", str(tmp_path / "cascade.csv"))
    table = pd.read_csv(tmp_path / "cascade.csv")
    assert len(table) == len(names) and (table.agree == table.images).all() and (table.images == 16).all()
    assert (table.forwards_cascade <= table.forwards_full).all() and (table.forwards_cascade < table.forwards_full).any()
