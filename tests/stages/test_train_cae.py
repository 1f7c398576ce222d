"""Stage train_cae: eq. (1) on hand-checked tensors, label-free training, resume, NaN stop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advrecover.data.pools import write_pool
from advrecover.models import autoencoder as ae
from advrecover.config import section
from advrecover.stages import train_cae
from advrecover.training import NonFiniteLoss

CFG = {"layout": "patches", "patch": 2, "widths": [8, 4], "kernel": 3, "stride": 1, "lambda1": 0.001,
       "optimizer": "adam", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0, "batch_size": 8, "epochs": 3,
       "lr_milestones": [500], "lr_reference_epochs": 700, "lr_gamma": 0.1, "precision": "float32"}


def unlabelled_pool(path, n=24, size=8, seed=0):
    coarse = np.random.default_rng(seed).integers(0, 256, (n, 2, 2, 3), dtype=np.uint8)  # smooth, learnable images
    images = coarse.repeat(size // 2, axis=1).repeat(size // 2, axis=2)
    write_pool(path, images, np.full(n, -1), np.arange(n), {"source": "test"})
    return path


def run_cae(cfg, pool, model, history, metrics):
    return train_cae.run(cfg=section(train_cae.CAEConfig, cfg), seed=0, device="cpu", pool_path=pool, model_path=model, history_path=history,
                         metrics_path=metrics, progress=False)


def test_cae_loss_is_eq1_on_hand_checked_tensors():
    x = torch.zeros(2, 1, 1, 2)
    x_hat = torch.tensor([[1.0, 0.0], [1.0, 1.0]]).reshape(2, 1, 1, 2)  # squared errors 1+0+1+1 over 4 elements
    mu, logvar = torch.tensor([[2.0], [0.0]]), torch.zeros(2, 1)  # KL 0.5*mu^2: 2 and 0
    terms = train_cae.cae_loss(x, x_hat, mu, logvar, lambda1=0.5)
    assert terms["recon"].item() == pytest.approx(0.75)
    assert terms["kl"].item() == pytest.approx(1.0)
    assert terms["loss"].item() == pytest.approx(0.75 + 0.5 * 1.0)


def test_trains_on_an_unlabelled_pool_and_writes_its_outputs(tmp_path):
    pool = unlabelled_pool(tmp_path / "cae.h5")
    metrics = run_cae(CFG, pool, tmp_path / "cae.pt", tmp_path / "h.csv", tmp_path / "m.json")
    assert metrics["n"] == 24 and np.isfinite(metrics["psnr_train"])
    history = (tmp_path / "h.csv").read_text().splitlines()
    assert history[0] == "epoch,loss,recon,kl" and len(history) == 1 + CFG["epochs"]
    assert not (tmp_path / "cae.ckpt").exists()
    assert isinstance(ae.load(tmp_path / "cae.pt"), ae.ConvVAE)


def test_training_lowers_the_reconstruction_error(tmp_path):
    pool = unlabelled_pool(tmp_path / "cae.h5", n=64)
    run_cae({**CFG, "epochs": 8}, pool, tmp_path / "cae.pt", tmp_path / "h.csv", tmp_path / "m.json")
    recon = [float(line.split(",")[2]) for line in (tmp_path / "h.csv").read_text().splitlines()[1:]]
    assert recon[-1] < 0.8 * recon[0]


def test_resume_after_a_killed_epoch_gives_the_same_weights(tmp_path, monkeypatch):
    pool = unlabelled_pool(tmp_path / "cae.h5")
    run_cae(CFG, pool, tmp_path / "full.pt", tmp_path / "full.csv", tmp_path / "full.json")

    from advrecover import training

    real = training.run_epoch
    calls = {"n": 0}

    def dies_in_epoch_3(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "run_epoch", dies_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        run_cae(CFG, pool, tmp_path / "cut.pt", tmp_path / "cut.csv", tmp_path / "cut.json")
    assert (tmp_path / "cut.ckpt").exists() and not (tmp_path / "cut.pt").exists()
    monkeypatch.setattr(training, "run_epoch", real)
    run_cae(CFG, pool, tmp_path / "cut.pt", tmp_path / "cut.csv", tmp_path / "cut.json")
    full, cut = (torch.load(tmp_path / f"{n}.pt", weights_only=True)["state_dict"] for n in ("full", "cut"))
    assert all(torch.equal(full[k], cut[k]) for k in full)
    assert (tmp_path / "full.csv").read_text() == (tmp_path / "cut.csv").read_text()


def test_a_non_finite_loss_stops_with_the_epoch_and_the_term(tmp_path):
    pool = unlabelled_pool(tmp_path / "cae.h5")
    with pytest.raises(NonFiniteLoss, match=r"loss term '(loss|recon|kl)' is (nan|inf) at epoch 1"):
        run_cae({**CFG, "lr": 1e30, "optimizer": "sgd"}, pool, tmp_path / "cae.pt", tmp_path / "h.csv", tmp_path / "m.json")
    assert not (tmp_path / "cae.pt").exists()
