"""Every loss term of the purifiers on hand-checked tensors (constructed critics and features)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from advrecover import purifiers
from advrecover.purifiers.pix2pix import gan_loss

ZEROS, ONES = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
IDENTITY = nn.Flatten()  # features(x) = x: the perceptual term is then the pixel MSE
SOFTPLUS_1 = math.log(1 + math.e)  # -log sigmoid(-1) = log(1 + e)


class MeanCritic(nn.Module):
    """A constructed critic: the image mean (NRP: one score per image; Pix2Pix: one per pixel of the candidate)."""

    def forward(self, x, candidate=None):
        return x.mean((1, 2, 3)) if candidate is None else candidate.mean(1, keepdim=True)


def test_perceptual_is_the_feature_mse_with_a_fixed_target():
    fake, clean = ZEROS.clone().requires_grad_(True), ONES.clone().requires_grad_(True)
    loss = purifiers.perceptual(IDENTITY, fake, clean)
    assert loss.item() == pytest.approx(1.0)
    loss.backward()
    assert clean.grad is None and fake.grad is not None  # the clean features are a constant


def test_relativistic_average_loss_by_hand():
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0])
    # real - mean(fake) = [2, 0] towards 1: log(1 + e^-2), log 2; fake - mean(real) = [-1, -1] towards 0: log(1 + e^-1)
    expected = 0.5 * ((math.log(1 + math.exp(-2)) + math.log(2)) / 2 + math.log(1 + math.exp(-1)))
    assert purifiers.relativistic(real, fake).item() == pytest.approx(expected)


def test_cgan_loss_by_hand():
    assert gan_loss(torch.zeros(3, 1, 2, 2), True).item() == pytest.approx(math.log(2))
    assert gan_loss(torch.full((3, 1, 2, 2), 1.0), False).item() == pytest.approx(SOFTPLUS_1)


def test_nrp_terms_and_their_weighted_sum():
    nrp = purifiers.build({"method": "nrp", "width": 4, "blocks": 1, "critic_width": 4, "perceptual": 1.0,
                           "pixel": 2.0, "adversarial": 0.5})
    nrp.critic = MeanCritic()  # scores: clean 1, fake 0
    terms = nrp.generator_terms(ZEROS, ONES, ZEROS, IDENTITY)
    assert terms["perceptual"].item() == pytest.approx(1.0) and terms["pixel"].item() == pytest.approx(1.0)
    # the generator's relativistic loss: fake - mean(real) = -1 towards 1, real - mean(fake) = 1 towards 0
    assert terms["adversarial"].item() == pytest.approx(SOFTPLUS_1)
    assert terms["loss"].item() == pytest.approx(1.0 + 2.0 + 0.5 * SOFTPLUS_1)
    # the critic's: real - mean(fake) = 1 towards 1, fake - mean(real) = -1 towards 0
    assert nrp.critic_terms(ZEROS, ONES, ZEROS)["loss"].item() == pytest.approx(math.log(1 + math.exp(-1)))


def test_pix2pix_terms_and_their_weighted_sum():
    p2p = purifiers.build({"method": "pix2pix", "width": 4, "depth": 2, "critic_width": 4, "alpha": 100.0,
                           "lam": 10.0})
    p2p.critic = MeanCritic()  # patch logits: the candidate's channel mean (clean 1, fake 0)
    terms = p2p.generator_terms(ONES, ONES, ZEROS, IDENTITY)
    assert terms["cgan"].item() == pytest.approx(math.log(2))
    assert terms["perceptual"].item() == pytest.approx(1.0) and terms["l2"].item() == pytest.approx(1.0)
    assert terms["loss"].item() == pytest.approx(math.log(2) + 100.0 + 10.0)
    critic = p2p.critic_terms(ONES, ONES, ZEROS)["loss"].item()
    assert critic == pytest.approx(0.5 * (math.log(1 + math.exp(-1)) + math.log(2)))


@pytest.mark.parametrize("spec", [{"method": "nrp", "width": 4, "blocks": 2, "critic_width": 4},
                                  {"method": "pix2pix", "width": 4, "depth": 4, "critic_width": 4}])
def test_generators_keep_the_image_shape_and_critics_score_it(spec):
    p = purifiers.build(spec)
    x = torch.rand(2, 3, 32, 32)
    fake = p.generator(x)
    assert fake.shape == x.shape
    assert torch.isfinite(p.critic_terms(x, x, fake)["loss"]) and torch.isfinite(
        p.generator_terms(x, x, fake, IDENTITY)["loss"])
