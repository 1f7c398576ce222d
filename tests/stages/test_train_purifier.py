"""Stage train_purifier: label-free training (bit-identical weights whatever the labels), resume
after a killed epoch, NaN stop, and the written generator loads with weights_only=True."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advrecover import purifiers
from advrecover.data.pools import write_pool
from advrecover.models.victim import VictimConfig
from advrecover.config import section
from advrecover.stages import train_purifier
from advrecover.training import NonFiniteLoss

from attacks.conftest import WEIGHTS, shapes

VICTIM = VictimConfig(mode="train", widths=(16, 32), blocks=(1, 1), stem_stride=1, epochs=1, batch_size=8, lr=0.1,
                      weight_decay=0.0, augment="none", eval_batch_size=64, checkpoint=None,
                      torchvision_arch="resnet50", torchvision_weights=None, imagenet_classes=None)
SSP = {"method": "ssp", "eps": 16 / 255, "step": 0.01, "steps": 2}
TRAIN = {"attack": "ssp", "fresh_ssp": True, "features": "victim", "features_weights": None, "lr": 0.001,
         "betas": [0.9, 0.999], "batch_size": 8, "epochs": 3, "flip": True}
SPECS = {"nrp": {"method": "nrp", "width": 8, "blocks": 1, "critic_width": 4, "train": TRAIN},
         "pix2pix": {"method": "pix2pix", "width": 4, "depth": 2, "critic_width": 4, "train": TRAIN}}


def pool(path, labels: str, n: int = 24):
    images, real = shapes(n)
    chosen = {"real": real, "shuffled": np.random.default_rng(1).permutation(real), "none": np.full(n, -1)}[labels]
    write_pool(path, images, chosen, np.arange(n), {"source": "test"})
    return path


def train(tmp_path, name: str, pool_path, out: str, spec=None, **train_overrides):
    spec = spec or SPECS[name]
    cfg = section(train_purifier.PurifierTraining, {**spec["train"], **train_overrides})
    return train_purifier.run(name=name, spec=spec, cfg=cfg, attack_spec=SSP, pool_path=pool_path, victim_path=WEIGHTS,
                              victim_cfg=VICTIM, seed=0, device="cpu", model_path=tmp_path / f"{out}.pt",
                              history_path=tmp_path / f"{out}.csv", metrics_path=tmp_path / f"{out}.json",
                              progress=False)


def weights(path) -> dict:
    return torch.load(path, weights_only=True)["generator"]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_no_label_reaches_training(tmp_path, name):
    """Real, shuffled and absent labels give bit-identical generators: training never reads them."""
    for labels in ("real", "shuffled", "none"):
        train(tmp_path, name, pool(tmp_path / f"{labels}.h5", labels), labels, epochs=2)
    real, shuffled, none = (weights(tmp_path / f"{k}.pt") for k in ("real", "shuffled", "none"))
    assert all(torch.equal(real[k], shuffled[k]) and torch.equal(real[k], none[k]) for k in real)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_resume_after_a_killed_epoch_gives_the_uninterrupted_weights(tmp_path, monkeypatch, name):
    data = pool(tmp_path / "cae.h5", "none")
    train(tmp_path, name, data, "full")
    real, calls = train_purifier.batch_step, {"n": 0}

    def dies_in_epoch_2(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # 24 images in batches of 8: the first batch of epoch 2
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(train_purifier, "batch_step", dies_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, name, data, "cut")
    assert (tmp_path / "cut.ckpt").exists() and not (tmp_path / "cut.pt").exists()
    monkeypatch.setattr(train_purifier, "batch_step", real)
    train(tmp_path, name, data, "cut")
    full, cut = weights(tmp_path / "full.pt"), weights(tmp_path / "cut.pt")
    assert all(torch.equal(full[k], cut[k]) for k in full)
    assert (tmp_path / "full.csv").read_text() == (tmp_path / "cut.csv").read_text()


def test_writes_a_generator_that_loads_safely_and_its_metrics(tmp_path):
    metrics = train(tmp_path, "nrp", pool(tmp_path / "cae.h5", "none"), "nrp", epochs=1)
    assert metrics["n"] == 24 and all(np.isfinite(metrics[k]) for k in ("psnr_perturbed", "psnr_purified"))
    header = (tmp_path / "nrp.csv").read_text().splitlines()[0].split(",")
    assert header[0] == "epoch" and {"loss", "perceptual", "pixel", "adversarial", "critic"} <= set(header)
    generator = purifiers.load_generator(tmp_path / "nrp.pt")
    assert generator(torch.rand(2, 3, 16, 16)).shape == (2, 3, 16, 16)
    assert not any(p.requires_grad for p in generator.parameters())


def test_a_non_finite_loss_stops_with_the_epoch_and_the_term(tmp_path):
    with pytest.raises(NonFiniteLoss, match=r"loss term '\w+' is (nan|inf) at epoch 1"):
        train(tmp_path, "nrp", pool(tmp_path / "cae.h5", "none"), "nrp",
              spec={**SPECS["nrp"], "pixel": float("inf")})
    assert not (tmp_path / "nrp.pt").exists()
