"""Stage ``victim_robust``: the adversarially trained reference sees an attacked version of every
training batch, is written self-describing and loads as the adversarial_training defence's classifier."""

from __future__ import annotations

import pytest
import torch

from advrecover import attacks, defences
from advrecover.models import victim as victims
from advrecover.config import section
from advrecover.stages import victim_robust

from stages.test_victim import pools  # noqa: F401  (fixture)

FFGSM = {"method": "ffgsm", "eps": 8 / 255, "alpha": 10 / 255}


def run(tmp_path, params, pools_dir, attack=FFGSM, epochs=2):
    return victim_robust.run(cfg=section(victims.VictimConfig, params["victim"]), attack_spec=attack, epochs=epochs,
                             seed=0, device="cpu", pools_dir=pools_dir, model_path=tmp_path / "victim_robust.pt",
                             metrics_path=tmp_path / "m.json", history_path=tmp_path / "h.csv", progress=False)


def test_every_batch_is_attacked_and_the_model_loads_as_a_defence(tmp_path, params, pools, monkeypatch):
    seen = []
    real = attacks.build

    def spying_build(spec, model):
        attack = real(spec, model)
        original = attack.forward

        def forward(images, labels):
            adv = original(images, labels)
            seen.append(((adv - images).abs().amax().item(), model.training))
            return adv

        attack.forward = forward
        return attack

    monkeypatch.setattr(attacks, "build", spying_build)
    metrics = run(tmp_path, params, pools)
    batches = -(-400 // params["victim"]["batch_size"])
    assert len(seen) == 2 * batches  # every batch of both epochs
    assert all(0 < size <= 8 / 255 + 1e-6 and training for size, training in seen)  # in budget, in training mode
    assert set(metrics["accuracy"]) == {"aae", "test", "victim"}
    row = defences.build({"method": "adversarial_training"}, tmp_path)
    loaded = victims.load_resnet(tmp_path / "victim_robust.pt")
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(row.classifier(x), loaded(x))
    assert (tmp_path / "h.csv").read_text().splitlines()[0] == "epoch,loss,train_accuracy"
