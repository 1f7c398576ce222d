"""Stage ``victim``: train, checkpoint, torchvision and module modes; metrics on every labelled pool."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from advrecover.data.pools import POOL_ORDER, write_pool
from advrecover.models import victim as victims
from advrecover.config import section
from advrecover.stages import sample, victim


@pytest.fixture
def pools(tmp_path, params):
    """The tiny pools, of the easy shapes task: a tiny ResNet learns it in a few epochs at 16 pixels
    (the digits need thousands of images at 32)."""
    s = params["sample"]
    s["pools"]["victim"]["n"] = 400
    for pool, domain in (("aae", "textured"), ("test", "flat"), ("victim", "mixed")):
        s["pools"][pool]["dataset"] = f"shapes_{domain}"
    sample.run(cfg=sample.SampleConfig(pools=s["pools"], image_size=s["image_size"], seed=0, max_bad_fraction=0.0),
               out_dir=tmp_path / "pools", metrics_path=tmp_path / "s.json", progress=False)
    return tmp_path / "pools"


def run(tmp_path, cfg, pools_dir):
    paths = dict(model_path=tmp_path / "victim.pt", metrics_path=tmp_path / "victim.json",
                 history_path=tmp_path / "history.csv")
    metrics = victim.run(cfg=section(victims.VictimConfig, cfg), seed=0, device=torch.device("cpu"), pools_dir=pools_dir, progress=False, **paths)
    return metrics, paths


def test_train_learns_and_reports_every_labelled_pool(tmp_path, params, pools):
    cfg = dict(params["victim"], epochs=10)
    metrics, paths = run(tmp_path, cfg, pools)
    assert set(metrics["accuracy"]) == {"aae", "test", "victim"}  # cae is unlabelled
    assert metrics["accuracy"]["test"] > 0.3  # well above chance (0.1) after a few tiny epochs
    assert json.loads(paths["metrics_path"].read_text()) == metrics
    history = paths["history_path"].read_text().splitlines()
    assert history[0] == "epoch,loss,train_accuracy" and len(history) == 11
    losses = [float(r.split(",")[1]) for r in history[1:]]
    assert losses[-1] < losses[0]
    state = torch.load(paths["model_path"], weights_only=True)
    model = victims.load(paths["model_path"], section(victims.VictimConfig, cfg))
    assert set(state) == set(model.state_dict())
    assert not torch.allclose(state["normalize.std"], torch.full_like(state["normalize.std"], 0.25))


def test_checkpoint_mode_reproduces_the_saved_model(tmp_path, params, pools):
    cfg = dict(params["victim"], epochs=1)
    trained, paths = run(tmp_path, cfg, pools)
    ckpt = tmp_path / "given.pt"
    paths["model_path"].rename(ckpt)
    loaded, _ = run(tmp_path, dict(cfg, mode="checkpoint", checkpoint=str(ckpt)), pools)
    assert loaded["accuracy"] == trained["accuracy"]


def test_checkpoint_mode_without_a_path_is_a_clear_error(tmp_path, params, pools):
    with pytest.raises(ValueError, match="victim.checkpoint"):
        run(tmp_path, dict(params["victim"], mode="checkpoint"), pools)
    with pytest.raises(FileNotFoundError, match="victim.checkpoint"):
        run(tmp_path, dict(params["victim"], mode="checkpoint", checkpoint=str(tmp_path / "none.pt")), pools)


def test_torchvision_mode_restricts_logits_to_the_pool_classes(tmp_path, params):
    import torchvision

    wnids = [f"n{i:08d}" for i in range(1000)]
    (tmp_path / "classes.txt").write_text("\n".join(f"{w} name_{i}" for i, w in enumerate(wnids)))
    names = [wnids[7], wnids[42], wnids[999]]
    rng = np.random.default_rng(0)
    pools_dir = tmp_path / "pools"
    for name in POOL_ORDER:
        write_pool(pools_dir / f"{name}.h5", rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8),
                   [0, 1, 2, 0, 1, 2], np.arange(6), {"class_names": names})
    backbone = torchvision.models.resnet18(weights=None)
    torch.save(backbone.state_dict(), tmp_path / "r18.pt")
    cfg = dict(params["victim"], mode="torchvision", torchvision_arch="resnet18",
               torchvision_weights=str(tmp_path / "r18.pt"), imagenet_classes=str(tmp_path / "classes.txt"))
    metrics, paths = run(tmp_path, cfg, pools_dir)
    assert set(metrics["accuracy"]) == set(POOL_ORDER) and metrics["classes"] == 3
    model = victims.load(paths["model_path"], section(victims.VictimConfig, cfg))
    x = torch.rand(2, 3, 32, 32)
    full = backbone.eval()(victims.Normalize(victims.IMAGENET_MEAN, victims.IMAGENET_STD)(x))
    assert torch.allclose(model(x), full[:, [7, 42, 999]], atol=1e-5)


def test_torchvision_mode_never_downloads(tmp_path, params, pools):
    with pytest.raises(ValueError, match="never downloaded"):
        run(tmp_path, dict(params["victim"], mode="torchvision"), pools)


MODULE = {"mode": "module", "module": "advrecover_example.classifier:SmallCNN", "module_args": {"num_classes": 10, "width": 4}}


def test_module_mode_deploys_any_classifier_with_its_stored_weights(tmp_path, params, pools):
    """The example plugin's SmallCNN (an nn.Module from another package) with constructed weights:
    the victim stage writes it with the digest of its module's code, and every stage loads the same
    function of the input."""
    from advrecover_example.classifier import SmallCNN

    torch.manual_seed(0)
    given = SmallCNN(num_classes=10, width=4).eval()
    torch.save(given.state_dict(), tmp_path / "given.pt")
    cfg = dict(params["victim"], **MODULE, checkpoint=str(tmp_path / "given.pt"))
    metrics, paths = run(tmp_path, cfg, pools)
    assert metrics["mode"] == "module" and metrics["classes"] == 10
    stored = torch.load(paths["model_path"], weights_only=True)
    assert stored["module"] == MODULE["module"] and len(stored["code"]) == 64
    model = victims.load(paths["model_path"], section(victims.VictimConfig, cfg))
    x = torch.rand(4, 3, 16, 16)
    assert isinstance(model, SmallCNN) and torch.equal(model(x), given(x))
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("change, message", [
    ({"module": "advrecover_example.nowhere:SmallCNN"}, "cannot import 'advrecover_example.nowhere'"),
    ({"module": "advrecover_example.classifier:Missing"}, "has no attribute 'Missing'"),
    ({"module": "advrecover_example.classifier:torch"}, "failed"),
    ({"module_args": {"num_classes": 7, "width": 4}}, "returns 7 logits, the pools have 10 classes"),
    ({"module_args": {"classes": 10}}, "victim.module_args"),
])
def test_module_mode_errors_name_their_cause(tmp_path, params, pools, change, message):
    from advrecover_example.classifier import SmallCNN

    classes = change.get("module_args", {}).get("num_classes", 10)
    torch.save(SmallCNN(num_classes=classes, width=4).state_dict(), tmp_path / "given.pt")
    with pytest.raises(ValueError, match=message):
        run(tmp_path, dict(params["victim"], **{**MODULE, **change}, checkpoint=str(tmp_path / "given.pt")), pools)


def test_module_mode_refuses_a_checkpoint_that_would_run_code(tmp_path, params, pools):
    """The weights are read with weights_only=True: a pickle that runs code on load is refused, unrun."""
    from test_bad_input import Payload

    torch.save({"hook": Payload(tmp_path / "ran")}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="victim.checkpoint"):
        run(tmp_path, dict(params["victim"], **MODULE, checkpoint=str(tmp_path / "evil.pt")), pools)
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("kind", ["crop", "crop_flip"])
def test_augment_keeps_shape_and_content_range(kind):
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16)
    out = victim.augmenter(kind, 16)(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, x)


def test_crop_never_mirrors_and_none_is_no_augmentation():
    """Digits must not be flipped: every ``crop`` output is a shifted copy of its input (a horizontal
    gradient keeps its direction), while ``crop_flip`` mirrors some."""
    torch.manual_seed(0)
    ramp = torch.linspace(0, 1, 16).expand(32, 3, 16, 16).contiguous()
    slope = lambda t: (t[..., 1:] - t[..., :-1]).mean((1, 2, 3))  # noqa: E731
    assert (slope(victim.augmenter("crop", 16)(ramp)) > 0).all()
    assert (slope(victim.augmenter("crop_flip", 16)(ramp)) < 0).any()
    assert victim.augmenter("none", 16) is None
