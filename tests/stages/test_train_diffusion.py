"""Stage train_diffusion: label-free (bit-identical models whatever the labels), what it writes, a
pretrained diffusers directory read from safetensors only, and its errors."""

from __future__ import annotations

import json

import pytest
import torch

from advrecover.models import diffusion
from advrecover.stages import train_diffusion

from stages.test_train_purifier import pool

SPEC = diffusion.DiffusionSpec(widths=(8, 8), layers=1, groups=4, timesteps=1000, beta_start=1e-4, beta_end=0.02)


def train(tmp_path, pool_path, out: str, epochs: int = 2, pretrained=None):
    return train_diffusion.run(spec=SPEC, cfg=train_diffusion.DiffusionTraining(lr=0.003, batch_size=8, epochs=epochs,
                               t_max=50), pretrained=pretrained, image_size=32, pool_path=pool_path, seed=0,
                               device="cpu", model_path=tmp_path / f"{out}.pt", history_path=tmp_path / f"{out}.csv",
                               metrics_path=tmp_path / f"{out}.json", progress=False)


def test_no_label_reaches_training(tmp_path):
    """Real, shuffled and absent labels give bit-identical U-Nets: training never reads them."""
    for labels in ("real", "shuffled", "none"):
        train(tmp_path, pool(tmp_path / f"{labels}.h5", labels), labels)
    unets = [torch.load(tmp_path / f"{k}.pt", weights_only=True)["unet"] for k in ("real", "shuffled", "none")]
    assert all(torch.equal(unets[0][k], u[k]) for u in unets[1:] for k in unets[0])


def test_it_writes_a_loadable_model_its_history_and_its_losses(tmp_path):
    metrics = train(tmp_path, pool(tmp_path / "cae.h5", "none", n=48), "diffusion", epochs=4)
    assert json.loads((tmp_path / "diffusion.json").read_text()) == metrics
    assert metrics["n"] == 48 and metrics["t_max"] == 50 and not metrics["pretrained"]
    assert metrics["loss"] < metrics["loss_untrained"]  # the noise at small t is easy to predict
    assert (tmp_path / "diffusion.csv").read_text().splitlines()[0] == "epoch,loss"
    unet, scheduler, t_max = diffusion.load(tmp_path / "diffusion.pt")
    assert t_max == 50 and scheduler.config.num_train_timesteps == 1000 and not (tmp_path / "diffusion.ckpt").exists()
    assert not any(p.requires_grad for p in unet.parameters())


def test_a_pretrained_diffusers_directory_is_read_not_trained(tmp_path):
    """``diffusion.pretrained``: the directory's U-Net and schedule are written unchanged (its weights
    from safetensors, no training), trained on every timestep; a directory without them is named."""
    torch.manual_seed(0)
    unet, scheduler = diffusion.unet(SPEC, 32), diffusion.schedule(SPEC)
    unet.save_pretrained(tmp_path / "ddpm", safe_serialization=True)
    scheduler.save_pretrained(tmp_path / "ddpm")
    metrics = train(tmp_path, pool(tmp_path / "cae.h5", "none"), "read", pretrained=str(tmp_path / "ddpm"))
    assert metrics["pretrained"] and metrics["t_max"] == 1000 and metrics["loss"] == metrics["loss_untrained"]
    read, _, _ = diffusion.load(tmp_path / "read.pt")
    assert all(torch.equal(v, unet.state_dict()[k]) for k, v in read.state_dict().items())
    (tmp_path / "ddpm" / "diffusion_pytorch_model.safetensors").unlink()
    torch.save(unet.state_dict(), tmp_path / "ddpm" / "diffusion_pytorch_model.bin")  # a pickle: never read
    with pytest.raises(OSError, match="safetensors"):
        train(tmp_path, tmp_path / "cae.h5", "bin", pretrained=str(tmp_path / "ddpm"))
    with pytest.raises(FileNotFoundError, match="diffusion.pretrained: .* no diffusers model directory"):
        train(tmp_path, tmp_path / "cae.h5", "none", pretrained=str(tmp_path / "absent"))


def test_bad_input_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        train(tmp_path, tmp_path / "missing.h5", "x")
