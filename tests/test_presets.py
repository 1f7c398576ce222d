"""The paper preset (configs/paper.yaml): valid, and Snakemake plans the full paper DAG with it
against tiny stand-in dataset directories in the on-disk formats it names."""

from __future__ import annotations

from collections import Counter

import pytest
import yaml

from advrecover import params as params_mod
from data.test_sources import write_cifar
from helpers import REPO, copy_repo, save_image, sh, snakemake_jobs

SEVEN = ["fgsm", "pgd", "ssah", "deepfool", "bim", "cw", "jsma"]


def paper() -> dict:
    return yaml.safe_load((REPO / "configs/paper.yaml").read_text())


def test_paper_preset_is_valid_and_sets_the_paper_values():
    p = params_mod.load(REPO / "configs/paper.yaml")
    cae, aae = p["recovery"]["cae"]["faithful"], p["recovery"]["aae"]["faithful"]
    assert cae["widths"] == [512, 256, 128, 64] and aae["widths"] == [512, 400, 300, 200, 100, 64]
    assert (cae["epochs"], aae["epochs"], cae["batch_size"], cae["optimizer"], cae["lr"]) == (700, 1500, 256, "sgd", 0.03)
    assert aae["anchor"] == 0 and not aae["init_from_cae"] and aae["warmup"] * aae["epochs"] == 300
    assert {k: v["n"] for k, v in p["sample"]["pools"].items() if v["n"]} == \
        {"cae": 10000, "aae": 40000, "test": 10000, "victim": 20000}
    assert p["attack"]["run"] == SEVEN and p["recovery"]["train_on"] == SEVEN
    nrp, pix2pix = p["purifiers"]["nrp"], p["purifiers"]["pix2pix"]
    assert (nrp["width"], nrp["blocks"], nrp["train"]["fresh_ssp"]) == (64, 23, True)
    assert (pix2pix["alpha"], pix2pix["lam"], pix2pix["train"]["lr"], pix2pix["train"]["batch_size"],
            pix2pix["train"]["epochs"]) == (100, 10, 0.0001, 16, 200)
    assert p["robust_victim"]["attack"]["method"] == "pgd"
    reversal = p["evaluate"]["defences"]["reversal_multitask"]
    assert (reversal["eps"], reversal["step"], reversal["steps"]) == (0.0627451, 0.0078431, 40)
    assert set(reversal["tasks"]) == {"contrastive", "inpainting", "rotation"} and p["adaptive"]["per_defence"] == {}
    assert (p["ssl"]["train"], p["ssl"]["tasks"]["contrastive"]["temperature"]) == \
        ({"lr": 0.001, "batch_size": 100, "epochs": 200}, 0.2)


@pytest.mark.slow
def test_snakemake_plans_the_paper_dag_against_stand_in_datasets(tmp_path):
    ws = copy_repo(tmp_path / "ws", paper())
    for i in range(3):
        save_image(ws / f"data/raw/coco/train2017/{i:012d}.jpg", seed=i)
        save_image(ws / f"data/raw/imagenet-r/n0144353{i}/art_{i}.jpg", seed=i)
    write_cifar(ws / "data/raw/cifar10")
    (ws / "data/raw/imagenet_classes.txt").write_text("".join(f"n0144353{i}\n" for i in range(1000)))
    out = sh(["snakemake", "-n", "-p"], ws)
    jobs = snakemake_jobs(out.stdout + out.stderr, ws)
    counts = Counter(address.split("@")[0] for address in jobs)
    shards = len(paper()["attack"]["shards"])
    assert counts == {"sample": 1, "victim": 1, "attack": 2 * 7 * shards, "attack_merge": 2 * 7, "train_cae": 1,
                      "train_aae": 7, "train_aae_mixed": 1, "evaluate": 13, "adaptive": 13, "train_purifier": 2,
                      "victim_robust": 1, "train_ssl": 3, "tables": 1}
    assert "train_aae@faithful-cw" in jobs and "models/aae/faithful/cw.pt" in jobs["train_aae@faithful-cw"][2]
    assert "--variant faithful" in jobs["train_cae@faithful"][0]


def test_tiny_preset_is_valid_and_shares_the_default_keys():
    """configs/tiny.yaml (the tests' configuration) is valid and differs from params.yaml in sizes,
    not in structure: the same stages, attacks and variants are exercised."""
    tiny, default = params_mod.load(REPO / "configs/tiny.yaml"), params_mod.load(REPO / "params.yaml")
    assert tiny.keys() == default.keys()
    assert tiny["attack"]["instances"].keys() == default["attack"]["instances"].keys()
    assert set(tiny["attack"]["run"]) <= set(default["attack"]["run"])
    assert tiny["recovery"]["cae"]["default"].keys() == default["recovery"]["cae"]["default"].keys()
