"""Stage train_ssl: label-free (bit-identical heads whatever the labels), what it writes, and its errors."""

from __future__ import annotations

import json

import pytest
import torch

from advrecover import ssl
from advrecover.stages import train_ssl

from stages.test_train_purifier import VICTIM, WEIGHTS, pool

HEADS = {"contrastive": {"method": "contrastive", "projection": 8, "views": 2},
         "rotation": {"method": "rotation", "hidden": 16},
         "inpainting": {"method": "inpainting", "width": 4}}


def train(tmp_path, name: str, pool_path, out: str, epochs: int = 2, spec=None):
    return train_ssl.run(name=name, spec=spec or HEADS[name], cfg=train_ssl.SSLTraining(lr=0.003, batch_size=8,
                         epochs=epochs), pool_path=pool_path, victim_path=WEIGHTS, victim_cfg=VICTIM, seed=0,
                         device="cpu", model_path=tmp_path / f"{out}.pt", history_path=tmp_path / f"{out}.csv",
                         metrics_path=tmp_path / f"{out}.json", progress=False)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_no_label_reaches_training(tmp_path, name):
    """Real, shuffled and absent labels give bit-identical heads: training never reads them."""
    for labels in ("real", "shuffled", "none"):
        train(tmp_path, name, pool(tmp_path / f"{labels}.h5", labels), labels)
    heads = [torch.load(tmp_path / f"{k}.pt", weights_only=True)["head"] for k in ("real", "shuffled", "none")]
    assert all(torch.equal(heads[0][k], h[k]) for h in heads[1:] for k in heads[0])


def test_it_writes_a_loadable_head_its_history_and_its_losses(tmp_path):
    metrics = train(tmp_path, "rotation", pool(tmp_path / "aae.h5", "none", n=48), "rotation", epochs=6)
    assert json.loads((tmp_path / "rotation.json").read_text()) == metrics
    assert metrics["n"] == 48 and metrics["loss"] < metrics["loss_untrained"]  # four-way rotation is learnable
    assert (tmp_path / "rotation.csv").read_text().splitlines()[0] == "epoch,loss"
    head = ssl.load_head(tmp_path / "rotation.pt", 32)
    assert isinstance(head, ssl.Task) and not (tmp_path / "rotation.ckpt").exists()


def test_bad_input_is_named(tmp_path):
    """(An unknown task is refused when the params are loaded: tests/test_params.py.)"""
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        train(tmp_path, "rotation", tmp_path / "missing.h5", "x")
