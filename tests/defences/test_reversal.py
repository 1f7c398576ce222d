"""The self-supervised reversal (Mao et al. 2021; the multi-task form of Lawhon and Ducrest): it lowers
the self-supervised loss of attacked images on heads trained here, r stays in the eps ball and x + r
in [0, 1], no label is read, and the adaptive stage attacks it through the repair (BPDA, the unrolled
gradient) with EOT over its randomness."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
import torchattacks

from advrecover import defences, ssl
from advrecover.adaptive.routes import Defended
from advrecover.data.tensors import to_tensor
from advrecover.models.features import victim_features
from advrecover.stages import adaptive, train_ssl
from advrecover.stages.adaptive import Attacker, Batch

from attacks.conftest import WEIGHTS, architecture, shapes

HEADS = {"contrastive": {"method": "contrastive", "projection": 16, "views": 4},
         "rotation": {"method": "rotation", "hidden": 32}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The stored 16-pixel victim, two heads trained on its features here (no labels), 48 images."""
    models = tmp_path_factory.mktemp("models")
    victim = architecture()
    victim.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=True))
    victim.eval().requires_grad_(False)
    images, labels = shapes(400)
    x = to_tensor(images)
    features = victim_features(victim)
    for name, spec in HEADS.items():
        torch.manual_seed(0)
        head = ssl.build(spec, 32, 16)
        train_ssl.train(head, features, x[:352], train_ssl.SSLTraining(lr=0.003, batch_size=32, epochs=4), 0, "cpu",
                        models / f"{name}.csv", models / f"{name}.ckpt", "key", progress=False)
        (models / "ssl").mkdir(exist_ok=True)
        ssl.save_head(models / "ssl" / f"{name}.pt", spec, head, 32, 16)
    return models, victim, x[352:], torch.from_numpy(labels[352:])


def reversal(trained, tasks, steps=10):
    models, victim = trained[:2]
    return defences.build({"method": "reversal", "tasks": tasks, "steps": steps}, models, None, victim)


def losses(defence, x, seeds=16) -> torch.Tensor:
    """The reversal's objective on ``x`` under seeded draws of its random views, one per seed."""
    out = []
    for s in range(seeds):
        torch.manual_seed(s)
        with torch.no_grad():
            out.append(float(defence.objective(x)))
    return torch.tensor(out)


@pytest.mark.parametrize("tasks", [{"rotation": 1.0}, {"contrastive": 1.0, "rotation": 1.0}])
def test_the_reversal_lowers_the_self_supervised_loss_of_attacked_images(trained, tasks):
    _, victim, x, y = trained
    adv = torchattacks.PGD(victim, eps=8 / 255, alpha=2 / 255, steps=10)(x, y)
    defence = reversal(trained, tasks)
    torch.manual_seed(0)
    repaired = defence.recover(adv)
    drop = losses(defence, adv) - losses(defence, repaired)  # paired: the same views for both
    assert drop.mean() > 3 * drop.std() / len(drop) ** 0.5, drop  # lower, beyond the noise of the views


def test_r_stays_in_the_ball_and_x_plus_r_in_the_unit_cube(trained):
    x = trained[2].clone()
    x[:, :, :4] = 0.0  # saturated pixels: the projection into [0, 1] must hold them
    x[:, :, -4:] = 1.0
    out = reversal(trained, {"contrastive": 1.0, "rotation": 1.0}, steps=6).recover(x)
    assert (out - x).abs().max() <= 16 / 255 + 1e-6
    assert out.min() >= 0 and out.max() <= 1
    assert (out - x).abs().max() > 8 / 255  # it does move (the random start and the steps)


def test_no_label_reaches_the_reversal():
    assert list(inspect.signature(defences.reversal.Reversal.recover).parameters) == ["self", "x"]
    assert list(inspect.signature(ssl.Task.loss).parameters) == ["self", "features", "x"]


def test_it_is_random_and_unrolled_exactly_when_differentiated(trained):
    defence = reversal(trained, {"rotation": 1.0}, steps=3)
    x = trained[2][:8]
    torch.manual_seed(1)
    detached = defence.recover(x)
    torch.manual_seed(2)
    assert not torch.equal(detached, defence.recover(x))  # a new random start every call: EOT applies
    torch.manual_seed(1)
    xg = x.clone().requires_grad_(True)
    unrolled = defence.recover(xg)
    assert torch.allclose(unrolled, detached, atol=1e-6) and not detached.requires_grad
    (grad,) = torch.autograd.grad(unrolled.sum() * 0 + (unrolled * torch.randn_like(x)).sum(), xg)
    assert grad.abs().sum() > 0
    needs = defences.adaptive_needs({"method": "reversal"})
    assert needs == {"differentiable": True, "random": True, "surrogate": False}


def test_the_adaptive_stage_attacks_it_with_bpda_and_eot(trained):
    """BPDA through the repair (the loss on f(x + r*), r* detached) with EOT: on a seeded case where
    the reversal's randomness is large (a uniform start in the 0.3 ball), 8 samples per step make the
    attack at least as strong as one sample (here 4 images of 48 stronger on the development machine)."""
    models, victim, x, y = trained
    defence = defences.build({"method": "reversal", "tasks": {"contrastive": 1.0}, "steps": 1, "eps": 0.3}, models,
                             None, victim)
    cfg = adaptive.AdaptiveConfig(n=0, train_sets=("mixed",), batch_size=48, shards=(0,), cascade=True, eot=8, draws=1,
                                  threats={}, attacks={}, detection_aware=None, checks=None)
    att = Attacker(victim, defence, defences.adaptive_needs({"method": "reversal"}), cfg, 0, "cpu")
    assert att.eot == 8 and adaptive.routes_for(True, False) == ["full", "bpda"]
    threat, spec = {"norm": "Linf", "eps": 8 / 255}, {"method": "pgd", "steps": 10, "step_ratio": 0.25}
    every = Batch(0, np.arange(len(x)), x, y, {}, np.zeros(len(x), dtype=bool))
    clean = att.judge(x, y, 0).robust
    accuracy = {eot: float((clean & att.judge(att.attack("bpda", spec, threat, every, clean, eot), y, 0).robust).mean())
                for eot in (1, 8)}
    assert accuracy[8] <= accuracy[1], accuracy
    assert accuracy[8] < float(clean.mean())  # the attack does get through the repair


def test_bpda_is_the_identity_through_the_repair(trained):
    victim, x = trained[1], trained[2][:4].clone().requires_grad_(True)
    defence = reversal(trained, {"rotation": 1.0}, steps=2)
    torch.manual_seed(0)
    logits = Defended(victim, defence, "bpda")(x)
    (grad,) = torch.autograd.grad(logits[:, 0].sum(), x)
    torch.manual_seed(0)
    repaired = defence.recover(x.detach()).requires_grad_(True)
    (expected,) = torch.autograd.grad(victim(repaired)[:, 0].sum(), repaired)
    assert torch.allclose(grad, expected, atol=1e-6)


def test_missing_heads_and_bad_weights_are_named(trained, tmp_path):
    victim = trained[1]
    with pytest.raises(FileNotFoundError, match="ssl/inpainting.pt"):
        defences.build({"method": "reversal", "tasks": {"inpainting": 1.0}}, trained[0], None, victim)
    with pytest.raises(ValueError, match="positive weight"):
        defences.build({"method": "reversal", "tasks": {"rotation": 0.0}}, trained[0], None, victim)
    with pytest.raises(ValueError, match="needs the victim"):
        defences.build({"method": "reversal", "tasks": {"rotation": 1.0}}, trained[0])
