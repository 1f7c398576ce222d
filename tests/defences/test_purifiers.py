"""The purifier defences (NRP static and dynamic, Pix2Pix) and the adversarially trained row."""

from __future__ import annotations

import pytest
import torch

from advrecover import defences, purifiers
from advrecover.models import victim as victims
from advrecover.models.resnet import ResNet

SPEC = {"method": "nrp", "width": 4, "blocks": 1, "critic_width": 4}


@pytest.fixture
def models(tmp_path):
    torch.manual_seed(0)
    (tmp_path / "purifiers").mkdir()
    purifiers.save_generator(tmp_path / "purifiers" / "nrp.pt", {**SPEC, "train": {}}, purifiers.build(SPEC))
    return tmp_path


def test_dynamic_nrp_is_random_and_projects_into_the_ball(models):
    dynamic = defences.build({"method": "nrp_dynamic", "noise": 0.05, "radius": 16 / 255}, models)
    x = torch.rand(4, 3, 8, 8)
    moved = [dynamic.perturb(x) for _ in range(2)]
    assert not torch.equal(moved[0], moved[1])  # random: a new draw every call (EOT attacks average over it)
    for m in moved:
        assert (m - x).abs().max() <= 16 / 255 + 1e-7 and m.min() >= 0 and m.max() <= 1
        assert (m - x).abs().max() > 8 / 255  # std 0.05 noise reaches the projection
    assert not torch.equal(dynamic.recover(x), dynamic.recover(x))


def test_static_nrp_is_the_stored_generator_and_deterministic(models):
    static = defences.build({"method": "nrp"}, models)
    x = torch.rand(2, 3, 8, 8)
    generator = purifiers.load_generator(models / "purifiers" / "nrp.pt")
    assert torch.equal(static.recover(x), generator(x)) and torch.equal(static.recover(x), static.recover(x))


def test_a_purifier_file_with_code_is_refused(models):
    import pickle

    (models / "purifiers" / "evil.pt").write_bytes(pickle.dumps(print))
    with pytest.raises(ValueError, match="refusing|not a readable"):
        defences.build({"method": "pix2pix", "purifier": "evil"}, models)


def test_adversarial_training_answers_with_its_own_classifier(tmp_path):
    model = ResNet(10, [4, 8], [1, 1], stem_stride=2).eval()
    cfg = victims.VictimConfig(mode="train", widths=(4, 8), blocks=(1, 1), stem_stride=2, epochs=1, batch_size=8,
                               lr=0.1, weight_decay=0.0, augment="none", eval_batch_size=8, checkpoint=None,
                               torchvision_arch="resnet18", torchvision_weights=None, imagenet_classes=None)
    victims.save_classifier(tmp_path / "victim_robust.pt", model, cfg)
    row = defences.build({"method": "adversarial_training"}, tmp_path)
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(row.recover(x), x)
    assert torch.equal(row.classifier(x), model(x))
    assert defences.classifier(row, "victim") is row.classifier


def test_adversarial_training_of_a_module_victim_answers_with_that_class(tmp_path):
    """A module victim's robust reference is an instance of the victim's own class (stage victim_robust)."""
    from dataclasses import replace

    from advrecover_example.classifier import SmallCNN

    torch.manual_seed(0)
    model = SmallCNN(num_classes=10, width=4).eval()
    cfg = victims.VictimConfig(mode="module", widths=(4,), blocks=(1,), stem_stride=2, epochs=1, batch_size=8,
                               lr=0.1, weight_decay=0.0, augment="none", eval_batch_size=8, checkpoint=None,
                               torchvision_arch="resnet18", torchvision_weights=None, imagenet_classes=None)
    victims.save_classifier(tmp_path / "victim_robust.pt", model,
                            replace(cfg, module="advrecover_example.classifier:SmallCNN",
                                    module_args={"num_classes": 10, "width": 4}))
    row = defences.build({"method": "adversarial_training"}, tmp_path)
    x = torch.rand(2, 3, 16, 16)
    assert isinstance(row.classifier, SmallCNN) and torch.equal(row.classifier(x), model(x))
    assert defences.classifier(defences.build({"method": "none"}, tmp_path), "victim") == "victim"
