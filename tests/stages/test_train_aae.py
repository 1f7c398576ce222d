"""Stage train_aae: eq. (2)-(6) on hand-checked tensors, the frozen CAE, no labels, the mixed set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advrecover.data.adversarial import ChecksumMismatch
from advrecover.data.pools import read_pool
from advrecover.models import autoencoder as ae
from advrecover.config import section
from advrecover.stages import train_aae, train_cae
from helpers import write_adversarial_set
from stages.test_train_cae import CFG as CAE_CFG, unlabelled_pool

AAE_CFG = {"widths": [8, 4], "kernel": 3, "stride": 1, "lambda2": 0.001, "warmup": 0.34, "anchor": 1.0,
           "init_from_cae": False, "optimizer": "adam", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0,
           "batch_size": 8, "epochs": 3, "lr_milestones": [500, 1000], "lr_reference_epochs": 1500, "lr_gamma": 0.1, "precision": "float32"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A trained tiny CAE, an aae pool and two adversarial sets of it (labels: real in one copy)."""
    d = tmp_path_factory.mktemp("aae")
    train_cae.run(cfg=section(train_cae.CAEConfig, CAE_CFG), seed=0, device="cpu", pool_path=unlabelled_pool(d / "cae.h5"), model_path=d / "cae.pt",
                  history_path=d / "cae.csv", metrics_path=d / "cae.json", progress=False)
    pool = unlabelled_pool(d / "aae.h5", n=20, seed=1)
    checksum = read_pool(pool).attrs["checksum"]
    clean = read_pool(pool).images / 255.0
    rng = np.random.default_rng(2)
    sets = {}
    for name in ("fgsm", "pgd"):
        adv = np.clip(clean + rng.uniform(-0.03, 0.03, clean.shape), 0, 1)
        sets[name] = write_adversarial_set(d / "sets" / f"{name}.h5", adv, checksum, attack=name)
    return d, pool, sets, checksum


def train(setup, out, train_set="fgsm", cfg=None, sets=None):
    d, pool, default_sets, _ = setup
    sets = sets or default_sets
    use = sets if train_set == "mixed" else {train_set: sets[train_set]}
    return train_aae.run(cfg=section(train_aae.AAEConfig, cfg or AAE_CFG), train_set=train_set, sets=use, pool_path=pool, cae_path=d / "cae.pt",
                         seed=0, device="cpu", model_path=out / "aae.pt", history_path=out / "h.csv",
                         metrics_path=out / "m.json", progress=False)


def test_aae_loss_is_eq5_and_eq6_on_hand_checked_tensors():
    x_a = torch.zeros(1, 1, 1, 2)
    t = {"x_hat": torch.tensor([1.0, 1.0]).reshape(1, 1, 1, 2),  # ||X_A - X^_A||^2 -> mean 1
         "z_a": torch.tensor([[[2.0, 0.0]]]), "z_hat": torch.zeros(1, 1, 2),  # ||Z_A - Z^_A||^2 -> mean 2
         "mu": torch.tensor([[[2.0, 0.0]]]), "logvar": torch.zeros(1, 1, 2),  # KL -> mean 1
         "x_c": torch.tensor([3.0, 0.0]).reshape(1, 1, 1, 2)}  # anchor ||X~_C - X_A||^2 -> mean 4.5
    full = train_aae.aae_loss(x_a, t, lambda2=0.1, anchor=0.0, warmup=False)
    assert {k: round(v.item(), 6) for k, v in full.items()} == {"loss": 1 + 2 + 0.1, "x_a": 1, "z_a": 2, "kl": 1,
                                                                 "anchor": 4.5}
    assert train_aae.aae_loss(x_a, t, 0.1, 0.0, warmup=True)["loss"].item() == pytest.approx(1.0)
    assert train_aae.aae_loss(x_a, t, 0.1, 2.0, warmup=False)["loss"].item() == pytest.approx(3.1 + 9.0)


def test_cycle_follows_eq2_to_eq4():
    cae = ae.ConvVAE(8, "patches", 2, [8, 4], 3).eval()
    aae = ae.ConvVAE(8, "patches", 2, [8, 4], 3).eval()
    x = torch.rand(2, 3, 8, 8)
    torch.manual_seed(0)
    t = train_aae.cycle(cae, aae, x)
    torch.manual_seed(0)
    mu, logvar = aae.encode(x)
    z_a = aae.sample(mu, logvar)
    assert torch.equal(t["z_a"], z_a)
    assert torch.equal(t["x_c"], cae.decode(z_a))
    assert torch.equal(t["z_hat"], cae.encode(cae.decode(z_a))[0])
    assert torch.equal(t["x_hat"], aae.decode(t["z_hat"]))


def test_the_cae_stays_bit_identical(setup, tmp_path):
    d = setup[0]
    before = torch.load(d / "cae.pt", weights_only=True)["state_dict"]
    cae = ae.load(d / "cae.pt")
    images = torch.rand(16, 3, 8, 8)
    train_aae.train(cae, images, section(train_aae.AAEConfig, AAE_CFG), 0, "cpu", tmp_path / "h.csv",
                    tmp_path / "c.ckpt", progress=False)
    after = cae.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in cae.parameters())


def test_a_changed_cae_is_detected(setup, tmp_path, monkeypatch):
    """The stage's own guard: if anything updated the CAE, the stage fails."""
    d = setup[0]
    cae = ae.load(d / "cae.pt")
    real = train_aae.training.fit

    def fit_that_touches_the_cae(*args, **kwargs):
        with torch.no_grad():
            next(cae.parameters()).add_(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_aae.training, "fit", fit_that_touches_the_cae)
    with pytest.raises(RuntimeError, match="CAE changed"):
        train_aae.train(cae, torch.rand(8, 3, 8, 8), section(train_aae.AAEConfig, AAE_CFG), 0, "cpu",
                        tmp_path / "h.csv", tmp_path / "c.ckpt", progress=False)


def test_labels_never_reach_training(setup, tmp_path):
    """The same images with real labels, with other labels, and with none train bit-identical AAEs."""
    d, pool, sets, checksum = setup
    images = read_pool(pool).images / 255.0
    adv = np.clip(images + 0.01, 0, 1)
    weights = []
    for i, labels in enumerate([None, np.arange(20) % 3, np.arange(20)[::-1] % 5]):
        path = write_adversarial_set(tmp_path / f"l{i}" / "fgsm.h5", adv, checksum, labels=labels)
        out = tmp_path / f"o{i}"
        train(setup, out, sets={"fgsm": path})
        weights.append(torch.load(out / "aae.pt", weights_only=True)["state_dict"])
    assert all(torch.equal(weights[0][k], w[k]) for w in weights[1:] for k in weights[0])


def test_stage_writes_model_history_and_metrics(setup, tmp_path):
    metrics = train(setup, tmp_path)
    assert metrics["n"] == 20 and np.isfinite(metrics["psnr_recovery_to_input"])
    header, *rows = (tmp_path / "h.csv").read_text().splitlines()
    assert header == "epoch,loss,x_a,z_a,kl,anchor" and len(rows) == 3
    assert not (tmp_path / "aae.ckpt").exists()


def test_init_from_cae_starts_at_the_cae(setup, tmp_path):
    d = setup[0]
    cae = ae.load(d / "cae.pt")
    cfg = section(train_aae.AAEConfig, {**AAE_CFG, "init_from_cae": True, "lr": 1e-12})
    aae = train_aae.train(cae, torch.rand(8, 3, 8, 8), cfg, 0, "cpu", tmp_path / "h.csv", tmp_path / "c.ckpt",
                          progress=False)
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(aae(x), cae(x), atol=1e-5)


def test_mixed_set_takes_each_image_from_one_attack(setup):
    _, pool, sets, checksum = setup
    images, _ = train_aae.training_images(sets, "mixed", 0, checksum)
    per = {n: train_aae.training_images(sets, n, 0, checksum)[0] for n in sets}
    assert len(images) == 20
    source = [next(n for n in per if torch.equal(images[i], per[n][i])) for i in range(20)]
    assert set(source) == set(sets)  # both attacks appear
    again, _ = train_aae.training_images(sets, "mixed", 0, checksum)
    assert torch.equal(images, again)


def test_sets_of_another_pool_are_refused(setup, tmp_path):
    _, _, sets, _ = setup
    with pytest.raises(ChecksumMismatch, match="different pool"):
        train_aae.training_images(sets, "fgsm", 0, "0" * 64)
