"""The 1-D convolutional VAE: layouts, shapes, and the loss pieces of Li, Angelov and Suri, eq. (1)-(6)."""

from __future__ import annotations

import math

import pytest
import torch

from advrecover.models import autoencoder as ae


@pytest.mark.parametrize("kind, channels, length", [("pixels", 3, 64), ("rows", 24, 8), ("patches", 12, 16)])
def test_layouts_are_lossless_and_have_the_documented_shape(kind, channels, length):
    x = torch.rand(2, 3, 8, 8)
    layout = ae.Layout(kind, 8, patch=2)
    seq = layout.to_seq(x)
    assert seq.shape == (2, channels, length)
    assert torch.equal(layout.to_image(seq), x)


def test_pixels_layout_is_row_major_and_patches_hold_one_patch_per_position():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    assert torch.equal(ae.Layout("pixels", 4).to_seq(x)[1, 2], x[1, 2].flatten())
    patches = ae.Layout("patches", 4, patch=2).to_seq(x)
    assert sorted(patches[0, :, 1].tolist()) == sorted(x[0, :, 0:2, 2:4].flatten().tolist())


@pytest.mark.parametrize("layout, stride", [("pixels", 1), ("patches", 2), ("rows", 1)])
def test_vae_maps_images_to_images_in_unit_range(layout, stride):
    model = ae.ConvVAE(8, layout, 2, [16, 8, 4], kernel=3, stride=stride)
    x = torch.rand(3, 3, 8, 8)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (3, 4, model.layout.length // stride ** 3)
    out = model(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert len([m for m in model.encoder if isinstance(m, torch.nn.Conv1d)]) + 1 == 3  # depth = len(widths)


def test_paper_cae_has_four_conv_layers_each_side():
    model = ae.ConvVAE(8, "pixels", 1, [512, 256, 128, 64], kernel=7)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv1d)]
    assert len(convs) == 8 and convs[0].kernel_size == (7,) and convs[3].out_channels == 2 * 64


def test_bad_layouts_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="not a multiple of patch"):
        ae.Layout("patches", 10, patch=4)
    with pytest.raises(ValueError, match="divisible by stride"):
        ae.ConvVAE(6, "patches", 2, [8, 4], kernel=3, stride=2)


def test_sse_is_the_mean_squared_error_over_elements():
    a = torch.zeros(2, 1, 2, 2)
    b = torch.tensor([[1.0, 1.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]]).reshape(2, 1, 2, 2)
    assert ae.sse(a, b).item() == pytest.approx((1 + 1 + 4) / 8)


def test_kl_matches_the_closed_form():
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)]])
    # 0.5 * (mu^2 + s^2 - 1 - log s^2) per element, averaged over the two elements
    expected = (0.5 * 1.0 + 0.5 * (4.0 - 1 - math.log(4.0))) / 2
    assert ae.kl_divergence(mu, logvar).item() == pytest.approx(expected)
    assert ae.kl_divergence(torch.zeros(3, 5), torch.zeros(3, 5)).item() == 0


def test_saved_model_loads_with_its_architecture(tmp_path):
    model = ae.ConvVAE(8, "patches", 2, [8, 4], kernel=3)
    ae.save(tmp_path / "m.pt", model)
    loaded = ae.load(tmp_path / "m.pt")
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(loaded(x), model.eval()(x))
