"""The paper preset (configs/paper.yaml): valid, Snakemake plans the full paper DAG with it, and the
whole DAG runs end to end at the paper's architecture with every size shrunk, on tiny stand-in
datasets in the on-disk formats it names."""

from __future__ import annotations

import subprocess
from collections import Counter

import pytest
import torch
import yaml

from advrecover import dag
from advrecover import params as params_mod
from advrecover.models import autoencoder as ae
from data.test_sources import write_cifar
from helpers import REPO, copy_repo, save_image, sh, snakemake_jobs

SEVEN = ["fgsm", "pgd", "ssah", "deepfool", "bim", "cw", "jsma"]


def paper() -> dict:
    return params_mod.read(REPO / "configs/paper.yaml")


def test_paper_preset_is_valid_and_sets_the_paper_values():
    p = paper()
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
    assert set(reversal["tasks"]) == {"contrastive", "inpainting", "rotation"}
    budgets = p["adaptive"]["per_defence"]  # Croce et al. 2022's attacks; diffpure's 100-step chain on fewer images
    assert budgets == {"reversal_contrastive": REVERSAL, "reversal_multitask": REVERSAL,
                       "diffpure": {**REVERSAL, "n": 128, "checks": {"n": 32}}}
    diffpure = p["evaluate"]["defences"]["diffpure"]
    assert (diffpure["t_star"], diffpure["steps"], p["diffusion"]["pretrained"]) == (100, 100, "models/pretrained/ddpm-cifar10")
    assert (p["sample"]["image_size"], cae["layout"], cae["precision"], aae["precision"]) == (32, "pixels", "bfloat16",
                                                                                               "bfloat16")
    assert (p["victim"]["mode"], p["victim"]["widths"], p["victim"]["blocks"]) == ("train", [64, 128, 256, 512],
                                                                                  [2, 2, 2, 2])
    assert (p["ssl"]["train"], p["ssl"]["tasks"]["contrastive"]["temperature"]) == \
        ({"lr": 0.001, "batch_size": 100, "epochs": 200}, 0.2)


def stand_in_datasets(ws, images: int = 3, wnids: int = 3, vgg: bool = True):
    """data/raw as the paper preset reads it: COCO train2017 JPEGs, the CIFAR-10 python batches,
    ImageNet-R wnid folders (``images`` per class), and (``vgg``) a local VGG16 state dict and a local
    diffusers DDPM directory (a tiny U-Net; fresh weights)."""
    for i in range(images * wnids):
        save_image(ws / f"data/raw/coco/train2017/{i:012d}.jpg", size=(48, 40), seed=i)
        save_image(ws / f"data/raw/imagenet-r/n0144353{i % wnids}/art_{i}.jpg", size=(40, 48), seed=100 + i)
    write_cifar(ws / "data/raw/cifar10")
    if not vgg:
        return
    (ws / "models/pretrained").mkdir(parents=True, exist_ok=True)
    import torchvision

    torch.save(torchvision.models.vgg16(weights=None).state_dict(), ws / "models/pretrained/vgg16.pth")
    from advrecover.models import diffusion

    spec = diffusion.DiffusionSpec(widths=(8, 8), layers=1, groups=4, timesteps=1000, beta_start=1e-4, beta_end=0.02)
    diffusion.unet(spec, 32).save_pretrained(ws / "models/pretrained/ddpm-cifar10", safe_serialization=True)
    diffusion.schedule(spec).save_pretrained(ws / "models/pretrained/ddpm-cifar10")


@pytest.mark.slow
def test_snakemake_plans_the_paper_dag_against_stand_in_datasets(tmp_path):
    ws = copy_repo(tmp_path / "ws", paper())
    stand_in_datasets(ws, images=1, vgg=False)
    out = sh(["snakemake", "-n", "-p"], ws)
    jobs = snakemake_jobs(out.stdout + out.stderr, ws)
    counts = Counter(address.split("@")[0] for address in jobs)
    shards, adaptive_shards = len(paper()["attack"]["shards"]), len(paper()["adaptive"]["shards"])
    assert counts == {"sample": 1, "victim": 1, "attack": 2 * 7 * shards, "attack_merge": 2 * 7, "train_cae": 1,
                      "train_aae": 7, "train_aae_mixed": 1, "evaluate": 14, "adaptive": 14 * adaptive_shards,
                      "adaptive_merge": 14, "train_purifier": 2,
                      "victim_robust": 1, "train_ssl": 3, "train_diffusion": 1, "tables": 1, "report": 1}
    assert "train_aae@faithful-cw" in jobs and "models/aae/faithful/cw.pt" in jobs["train_aae@faithful-cw"][2]
    assert "--variant faithful" in jobs["train_cae@faithful"][0]


STEPS = {"steps": 1}
RUN = ["fgsm", "pgd"]
# Every size of the paper preset shrunk: pools, epochs, batches, shards, attack and repair steps,
# the adaptive budget (2 images, one threat model, one attack of one step, EOT 1, one judgement draw
# (the tiny DAG and tests/adaptive judge over several), a two-point eps sweep); two of Table I's
# seven attacks run and trained on (RUN: pgd for the adaptive stage's pgd AAE, and fgsm: the unseen
# protocol evaluates each attack with the AAE of another, so it needs two), one JPEG
# quality of three (jpeg_50 and jpeg_20 are jpeg_75's code with another number) and one reversal of
# two (reversal_contrastive is reversal_multitask's code with one of its three heads); DiffPure's
# reverse chain in 2 DDIM steps of a stand-in local DDPM directory (tiny U-Net). Each further
# attack adds five jobs of the same stages, each defence two (8-70 s a job); every attack and
# defence method has its unit tests, and the plan test above counts the full DAG. Kept: every
# stage, defence method and head, and the architecture: image size, layout, widths, depths,
# kernels, blocks, views.
REDUCED = {
    "device": "cpu",
    "sample": {"pools": {"cae": {"n": 3}, "aae": {"n": 3}, "test": {"n": 4}, "victim": {"n": 5}}},
    "victim": {"epochs": 1, "batch_size": 4, "eval_batch_size": 8},
    "robust_victim": {"attack": STEPS, "epochs": 1},
    "attack": {"run": RUN, "shards": [0], "batch_size": 4, "instances": {
        "pgd": STEPS, "ssah": STEPS, "deepfool": STEPS, "bim": STEPS, "cw": STEPS, "jsma": {"gamma": 0.0007},
        "pgd_8": STEPS, "ssp": STEPS}},
    "recovery": {"train_on": RUN, **{part: {"faithful": {"epochs": 1, "batch_size": 4}} for part in ("cae", "aae")}},
    "purifiers": {name: {"train": {"epochs": 1, "batch_size": 4}} for name in ("nrp", "pix2pix")},
    "ssl": {"train": {"epochs": 1, "batch_size": 4}},
    "evaluate": {"batch_size": 8, "defences": {"reversal_multitask": STEPS, "diffpure": {"steps": 2},
                                               **{name: params_mod.Drop() for name in (
        "reversal_contrastive", "jpeg_50", "jpeg_20")}}},
    "adaptive": {"n": 2, "batch_size": 2, "shards": [0], "eot": 1, "draws": 1, "detection_aware": STEPS,
                 "checks": {**STEPS, "eps_sweep": [0.5, 1.0]},
                 "threats": params_mod.Replace({"linf": {"norm": "Linf", "eps": 0.0313725}}),
                 "attacks": params_mod.Replace({"apgd_ce": {"method": "apgd", "loss": "ce", "steps": 1}}),
                 "per_defence": {"reversal_contrastive": params_mod.Drop(), **{row: {
                     "n": 2, "batch_size": 2, "checks": STEPS,
                     "attacks": params_mod.Replace({"apgd_ce": {"method": "apgd", "loss": "ce", "steps": 1}})}
                     for row in ("reversal_multitask", "diffpure")}}},
}


@pytest.mark.slow
def test_the_paper_preset_runs_end_to_end_at_its_architecture(tmp_path):
    """Every stage of the paper DAG (REDUCED) runs and writes its outputs: 32-pixel images through the
    512-wide CAE/AAE in the pixels layout under bfloat16 autocast, ResNet-18, NRP's 23 blocks, the
    U-Net and the three heads, read from the datasets' own formats."""
    params = params_mod.merge(paper(), REDUCED)  # the overlay mechanism of configs/*.yaml
    assert list(params["adaptive"]["threats"]) == ["linf"] and list(params["adaptive"]["attacks"]) == ["apgd_ce"]
    assert all(list(budget["attacks"]) == ["apgd_ce"] for budget in params["adaptive"]["per_defence"].values())
    ws = copy_repo(tmp_path / "ws", params)
    stand_in_datasets(ws)
    sh(["snakemake", "--cores", "2"], ws, timeout=2400)
    targets = [t for stage in dag.load_stages(ws / "dvc.yaml", params) for t in stage.targets]
    assert len(targets) > 100 and [t for t in targets if not (ws / t).exists()] == []
    cae, aae = ae.load(ws / "models/cae/faithful.pt"), ae.load(ws / "models/aae/faithful/mixed.pt")
    assert (cae.layout.size, cae.architecture["layout"], cae.architecture["widths"], cae.architecture["kernel"]) == \
        (32, "pixels", [512, 256, 128, 64], 7) and aae.architecture["widths"] == [512, 400, 300, 200, 100, 64]
    victim = torch.load(ws / "models/victim.pt", weights_only=True)
    assert victim["fc.weight"].shape == (3, 512) and victim["layers.7.conv2.weight"].shape[0] == 512
    nrp = torch.load(ws / "models/purifiers/nrp.pt", weights_only=True)
    assert nrp["spec"]["blocks"] == 23
    adaptive = (ws / "results/adaptive.md").read_text()
    assert all(name in adaptive for name in params["evaluate"]["defences"]) and "jpeg_75" in adaptive
    assert {spec["method"] for spec in params["evaluate"]["defences"].values()} == \
        {spec["method"] for spec in paper()["evaluate"]["defences"].values()}


def test_tiny_preset_is_valid_and_shares_the_default_keys():
    """configs/tiny.yaml (the tests' configuration) is valid and differs from params.yaml in sizes,
    not in structure: the same stages, attacks and variants are exercised."""
    tiny, default = params_mod.read(REPO / "configs/tiny.yaml"), params_mod.load(REPO / "params.yaml")
    assert tiny.keys() == default.keys()
    assert tiny["attack"]["instances"].keys() == default["attack"]["instances"].keys()
    assert set(tiny["attack"]["run"]) <= set(default["attack"]["run"])
    assert tiny["recovery"]["cae"]["default"].keys() == default["recovery"]["cae"]["default"].keys()


COMPLETE = "5363bb7"  # the last commit whose presets were complete files
# Intended differences since COMPLETE: see CHANGED below.
MOVED = {"paper": [], "tiny": []}
# Added since COMPLETE, in both presets: the diffusion model (section diffusion) and the diffpure row.
ADDED = [("diffusion",), ("evaluate", "defences", "diffpure"), ("victim", "module"), ("victim", "module_args")]
# The built-in task became digits (an SVHN analogue), so the victim's augmentation names its kind
# (digits must not be flipped) and adversarial training fine-tunes the victim with a warmed-up
# budget (a 3-step PGD, Madry et al.'s adversary, since FGSM with a random start left too little
# robustness there); the paper keeps flips and trains from scratch at full budget. The adaptive stage
# became sharded and cascaded (adaptive.shards: the paper's 4 shards per defence; adaptive.cascade),
# and the tiny configuration attacks in batches of 8 (two units per run, two shards in the tests).
# The paper's reversals and diffpure are attacked with APGD-CE/DLR and Square on 200 images (diffpure,
# whose every gradient runs through a 100-step chain: 128), checks on 50 (32): a shard within a day in
# benchmarks/scale.py.
ADAPTIVE = {("adaptive", "cascade"): True}
REVERSAL = {"n": 200, "batch_size": 16, "checks": {"n": 50}, "attacks": {
    "apgd_ce": {"method": "apgd", "loss": "ce", "steps": 100}, "apgd_dlr": {"method": "apgd", "loss": "dlr", "steps": 100},
    "square": {"method": "square", "n_queries": 5000}}}
CHANGED = {
    "paper": {("victim", "augment"): "crop_flip", ("robust_victim", "warmup"): 0, ("robust_victim", "init"): "scratch",
              ("robust_victim", "lr"): 0.1, ("adaptive", "shards"): [0, 1, 2, 3], **ADAPTIVE,
              **{("adaptive", "per_defence", row): REVERSAL for row in ("reversal_contrastive", "reversal_multitask")},
              ("adaptive", "per_defence", "diffpure"): {**REVERSAL, "n": 128, "checks": {"n": 32}}},
    "tiny": {("victim", "augment"): "crop", ("robust_victim", "warmup"): 2, ("robust_victim", "init"): "victim",
             ("robust_victim", "lr"): 0.1,
             ("robust_victim", "attack"): {"method": "pgd", "eps": 0.0313725, "alpha": 0.0261438, "steps": 3},
             **{("sample", "pools", pool, "dataset"): dataset for pool, dataset in (
                 ("aae", "digits_photo"), ("test", "digits_rendition"), ("victim", "digits_mixed"))},
             ("adaptive", "shards"): [0], ("adaptive", "batch_size"): 8, **ADAPTIVE,
             # the tiny DAG deploys the example plugin (examples/plugin): its classifier and its defence
             ("victim", "mode"): "module", ("victim", "checkpoint"): "examples/plugin/weights/small_cnn_digits16.pt",
             ("victim", "module"): "advrecover_example.classifier:SmallCNN",
             ("victim", "module_args"): {"num_classes": 10, "width": 16},
             ("evaluate", "defences", "bit_depth"): {"method": "bit_depth", "bits": 4}},
}


def _move_to_end(tree: dict, path: tuple) -> None:
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = parent.pop(path[-1])


def _get(tree: dict, path: tuple):
    for key in path:
        tree = tree[key]
    return tree


def _set(tree: dict, path: tuple, value) -> None:
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


def _ordered(node):
    """``node`` compared with the order that matters: a mapping of named entries (every value a
    mapping: pools, defences, attacks) keeps its order; a method's parameters are named arguments."""
    if isinstance(node, dict):
        items = [(k, _ordered(v)) for k, v in node.items()]
        return items if node and all(isinstance(v, dict) for v in node.values()) else sorted(items)
    return [_ordered(v) for v in node] if isinstance(node, list) else node


@pytest.mark.parametrize("name", ["paper", "tiny"])
def test_the_overlays_reproduce_the_complete_presets_they_replaced(name):
    """Each overlay on today's params.yaml gives that commit's complete preset, value for value (and
    in the order of every collection of named entries, but for MOVED), but for CHANGED and ADDED."""
    def show(path):
        res = subprocess.run(["git", "show", f"{COMPLETE}:{path}"], cwd=REPO, capture_output=True, text=True)
        if res.returncode:
            pytest.skip(f"commit {COMPLETE} is not in this clone (shallow?): {res.stderr.strip()}")
        return yaml.safe_load(res.stdout)

    overlay = yaml.load((REPO / f"configs/{name}.yaml").read_text(), Loader=params_mod.OverlayLoader)
    merged, complete = params_mod.merge(params_mod.read(REPO / "params.yaml"), overlay), show(f"configs/{name}.yaml")
    for path in ADDED:
        _set(complete, path, _get(merged, path))
    for path in MOVED[name]:
        _move_to_end(complete, path)
    for path, value in CHANGED[name].items():
        _set(complete, path, value)
    assert merged == complete
    assert _ordered(merged) == _ordered(complete)


def test_preset_writes_the_merged_file_and_refuses_to_stack(tmp_path):
    base = tmp_path / "params.yaml"
    base.write_text((REPO / "params.yaml").read_text())
    args = ["preset", str(REPO / "configs/paper.yaml"), "--base", str(base), "--out", str(base)]
    assert params_mod.main(args) == 0
    assert params_mod.load(base) == paper()
    assert params_mod.main(args) == 2  # a preset on a preset: refused, the file unchanged
    assert params_mod.load(base) == paper()


@pytest.mark.parametrize("overlay, message", [
    ("seed: !drop\nsample: {pools: {nope: !drop }}\n", r"sample.pools.nope: !drop of a key the base does not have"),
    ("victim: {epochs: 0}\n", r"victim.epochs"),
])
def test_a_bad_overlay_names_the_key(tmp_path, overlay, message):
    (tmp_path / "bad.yaml").write_text(overlay)
    with pytest.raises(params_mod.ParamsError, match=message):
        params_mod.preset(tmp_path / "bad.yaml", REPO / "params.yaml")
