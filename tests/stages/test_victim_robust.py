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


def run(tmp_path, params, pools_dir, attack=FFGSM, epochs=2, warmup=0, init="scratch", victim_path=None):
    return victim_robust.run(cfg=section(victims.VictimConfig, params["victim"]), attack_spec=attack, epochs=epochs,
                             warmup=warmup, init=init, lr=0.05, seed=0, device="cpu", pools_dir=pools_dir,
                             victim_path=victim_path, model_path=tmp_path / "victim_robust.pt",
                             metrics_path=tmp_path / "m.json", history_path=tmp_path / "h.csv", progress=False)


def spy_on_attacks(monkeypatch) -> list:
    """(largest perturbation, model in training mode) of every batch the built attack makes."""
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
    return seen


def test_every_batch_is_attacked_and_the_model_loads_as_a_defence(tmp_path, params, pools, monkeypatch):
    seen = spy_on_attacks(monkeypatch)
    metrics = run(tmp_path, params, pools)
    batches = -(-400 // params["victim"]["batch_size"])
    assert len(seen) == 2 * batches  # every batch of both epochs
    assert all(0 < size <= 8 / 255 + 1e-6 and training for size, training in seen)  # in budget, in training mode
    assert set(metrics["accuracy"]) == {"aae", "test", "victim"}
    row = defences.build({"method": "adversarial_training"}, tmp_path)
    loaded = victims.load_classifier(tmp_path / "victim_robust.pt")
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(row.classifier(x), loaded(x))
    assert (tmp_path / "h.csv").read_text().splitlines()[0] == "epoch,loss,train_accuracy"


def test_the_budget_warms_up_over_the_first_epochs(tmp_path, params, pools, monkeypatch):
    """warmup 2: epoch 1 attacks within half the budget, epoch 2 uses all of it (Pang et al. 2021)."""
    seen = spy_on_attacks(monkeypatch)
    run(tmp_path, params, pools, warmup=2)
    batches = -(-400 // params["victim"]["batch_size"])
    first, second = [size for size, _ in seen[:batches]], [size for size, _ in seen[batches:]]
    assert max(first) <= 4 / 255 + 1e-6 < max(second) <= 8 / 255 + 1e-6


def test_init_victim_starts_from_the_victims_weights(tmp_path, params, pools):
    """Adversarial fine-tuning (Jeddi et al. 2020) starts from the victim stage's file, and a file of
    another architecture is a clear error naming it."""
    from stages.test_victim import run as run_victim

    run_victim(tmp_path, dict(params["victim"], epochs=1), pools)
    cfg = section(victims.VictimConfig, params["victim"])
    model, start = victim_robust.initial(cfg, "victim", tmp_path / "victim.pt", [str(c) for c in range(10)], 0)
    victim = victims.load(tmp_path / "victim.pt", cfg)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), victim.state_dict().values()))
    fresh, scratch = victim_robust.initial(cfg, "scratch", None, [str(c) for c in range(10)], 0)
    assert scratch == "scratch" and start != scratch
    assert not torch.equal(fresh.fc.weight, model.fc.weight)
    wider = section(victims.VictimConfig, dict(params["victim"], widths=[12, 24]))
    with pytest.raises(ValueError, match="victim model: .*victim.pt holds weights of another architecture"):
        victim_robust.initial(wider, "victim", tmp_path / "victim.pt", [str(c) for c in range(10)], 0)
