"""Every attack flips a trained model's predictions within its budget; the registry's contract."""

from __future__ import annotations

import math

import pytest
import torch
import torchattacks

from advrecover import attacks
from advrecover.attacks.ssah import haar_lowpass

EPS = 8 / 255
INSTANCES = {
    "fgsm": {"method": "fgsm", "eps": EPS},
    "pgd": {"method": "pgd", "eps": EPS, "alpha": 2 / 255, "steps": 10},
    "bim": {"method": "bim", "eps": EPS, "alpha": 2 / 255, "steps": 10},
    "cw": {"method": "cw", "c": 2, "kappa": 2, "steps": 50, "lr": 0.01},
    "deepfool": {"method": "deepfool", "steps": 20, "overshoot": 0.02},
    "jsma": {"method": "jsma", "gamma": 0.05},
    "ssah": {"method": "ssah", "steps": 60, "lr": 0.01, "alpha": 1.0},
    "ssp": {"method": "ssp", "eps": 16 / 255, "step": 2 / 255, "steps": 20},
}


def success_rate(model, adv, y) -> float:
    with torch.no_grad():
        return (model(adv).argmax(1) != y).float().mean().item()


def same_size_noise(x, adv, seed: int = 0):
    """Gaussian noise with each image's perturbation L2 norm: what an attack must beat."""
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    scale = (adv - x).flatten(1).norm(dim=1) / noise.flatten(1).norm(dim=1)
    return (x + noise * scale.view(-1, 1, 1, 1)).clamp(0, 1)


@pytest.mark.parametrize("name", list(INSTANCES))
def test_attack_flips_predictions(victim_and_images, name):
    """Each attack flips clearly more predictions than random noise of the same L2 size, on
    the same model and images (here: 0.31 to 0.98 against at most 0.10)."""
    model, x, y = victim_and_images
    attack = attacks.build(INSTANCES[name], model)
    torch.manual_seed(0)
    adv = attack(x, y)
    assert adv.shape == x.shape and adv.min() >= 0 and adv.max() <= 1
    assert success_rate(model, adv, y) > success_rate(model, same_size_noise(x, adv), y) + 0.15, name


@pytest.mark.parametrize("name", ["fgsm", "pgd", "bim", "ssp"])
def test_linf_attacks_respect_eps(victim_and_images, name):
    model, x, y = victim_and_images
    adv = attacks.build(INSTANCES[name], model)(x, y)
    eps = INSTANCES[name]["eps"]
    assert (adv - x).abs().max().item() <= eps + 1e-6


def test_jsma_changes_at_most_gamma_of_the_features(victim_and_images):
    model, x, y = victim_and_images
    gamma = INSTANCES["jsma"]["gamma"]
    adv = attacks.build(INSTANCES["jsma"], model)(x, y)
    features = x[0].numel()
    changed = ((adv - x).abs() > 0).flatten(1).sum(1)
    assert changed.max().item() <= 2 * math.ceil(features * gamma / 2)
    assert changed.float().mean() > 0


def test_batched_jsma_handles_any_number_of_classes(victim_and_images):
    model, x, y = victim_and_images
    three = torch.nn.Sequential(model, torch.nn.Linear(10, 3)).eval()
    adv = attacks.build({"method": "jsma", "gamma": 0.1}, three)(x[:8], three(x[:8]).argmax(1))
    assert adv.shape == x[:8].shape


def test_batched_deepfool_agrees_with_torchattacks(victim_and_images):
    model, x, y = victim_and_images
    x, y = x[:24], y[:24]
    ours, ours_to = attacks.build({"method": "deepfool", "steps": 20, "overshoot": 0.02, "candidates": 5},
                                  model).forward_return_target_labels(x, y)
    ref = torchattacks.DeepFool(model, steps=20, overshoot=0.02)
    theirs, theirs_to = ref.forward_return_target_labels(x, y)
    assert (ours_to == theirs_to).float().mean() >= 0.95
    l2_ours, l2_theirs = (ours - x).flatten(1).norm(dim=1), (theirs - x).flatten(1).norm(dim=1)
    assert abs(l2_ours.mean() / l2_theirs.mean() - 1) < 0.1


def margins(model, images):
    with torch.no_grad():
        top = model(images).topk(2, dim=1).values
    return top[:, 0] - top[:, 1]


def test_deepfool_leaves_its_images_clearly_past_the_boundary(victim_and_images):
    """The overshoot scales the accumulated perturbation (Moosavi-Dezfooli et al.'s x + (1 + eta) r_tot):
    the images it flips keep a clear logit margin, where torchattacks' per-step overshoot leaves
    images whose top two logits (nearly) tie; both are measured here on the same model."""
    model, x, y = victim_and_images
    ours = attacks.build({"method": "deepfool", "steps": 50, "overshoot": 0.02, "candidates": 10}, model)(x, y)
    theirs = torchattacks.DeepFool(model, steps=50, overshoot=0.02)(x, y)
    with torch.no_grad():
        flipped = model(ours).argmax(1) != y
    assert flipped.float().mean() > 0.9
    near_ours = (margins(model, ours)[flipped] < 1e-3).float().mean()
    near_theirs = (margins(model, theirs) < 1e-3).float().mean()
    assert near_ours <= 0.05 and near_ours <= near_theirs
    l2_ours, l2_theirs = (ours - x).flatten(1).norm(dim=1), (theirs - x).flatten(1).norm(dim=1)
    assert l2_ours.mean() < 1.5 * l2_theirs.mean()  # still a minimal perturbation


def test_ssah_puts_less_of_its_perturbation_in_low_frequencies_than_pgd(victim_and_images):
    """SSAH (Luo et al. 2022) penalises the Haar-LL difference, so the low-frequency share of its
    perturbation's energy is smaller than PGD's on the same model and images (a ratio measured
    in this test, not a success threshold that moves with the machine)."""
    model, x, y = victim_and_images
    torch.manual_seed(0)
    ssah = attacks.build(INSTANCES["ssah"], model)(x, y)
    pgd = attacks.build(INSTANCES["pgd"], model)(x, y)

    def low_share(adv):
        delta = adv - x
        return (haar_lowpass(delta).pow(2).sum() / delta.pow(2).sum()).item()

    assert success_rate(model, ssah, y) > 0
    assert low_share(ssah) < low_share(pgd)


def test_haar_lowpass_is_the_ll_reconstruction():
    x = torch.rand(2, 3, 8, 6)
    low = haar_lowpass(x)
    assert torch.allclose(low[..., 0, 0], x[..., :2, :2].mean((-1, -2)))
    assert torch.allclose(haar_lowpass(low), low)  # a projection
    assert haar_lowpass(torch.rand(1, 3, 7, 5)).shape == (1, 3, 7, 5)


def test_check_names_the_bad_key():
    attacks.check({"a": {"method": "pgd", "eps": 0.1, "alpha": 0.01, "steps": 3}})
    with pytest.raises(ValueError, match=r"attack.instances.a.method"):
        attacks.check({"a": {"method": "nope"}})
    with pytest.raises(ValueError, match=r"attack.instances.b.epsilon"):
        attacks.check({"b": {"method": "fgsm", "epsilon": 0.1}})
    with pytest.raises(ValueError, match=r"needs \['eps'\]"):
        attacks.check({"c": {"method": "fgsm"}})


def test_ssp_never_downloads_weights(victim_and_images):
    model, _, _ = victim_and_images
    with pytest.raises(ValueError, match="never downloaded"):
        attacks.build({"method": "ssp", "eps": 0.1, "step": 0.01, "steps": 1, "network": "vgg16"}, model)


def test_torchattacks_jsma_accepts_channels_last_images(victim_and_images):
    model, x, y = victim_and_images
    x = x[:2].contiguous(memory_format=torch.channels_last)
    adv = attacks.build({"method": "jsma", "gamma": 0.01, "impl": "torchattacks"}, model)(x, y[:2])
    assert adv.shape == x.shape
