"""The input-transformation defences: JPEG is Pillow's codec, its differentiable surrogate is close
to it, the median filter and TV minimisation do what they say, and each declares its adaptive needs."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from advrecover import defences
from advrecover.data.builtin import PhotosSource, ShapesSource
from advrecover.data.tensors import to_tensor


def photos(n: int = 32, size: int = 32) -> np.ndarray:
    src = PhotosSource(0, size)
    return np.stack([src.load(i)[0] for i in range(n)])


def build(spec):
    return defences.build(spec, "unused")


@pytest.mark.parametrize("quality", [75, 50, 20])
def test_jpeg_is_pillows_codec_on_uint8_images(quality):
    images = np.concatenate([photos(8), np.stack([ShapesSource(0, 32).load(i, "flat")[0] for i in range(8)])])
    out = build({"method": "jpeg", "quality": quality}).recover(to_tensor(images))
    for image, got in zip(images, out):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        expected = np.asarray(Image.open(buffer).convert("RGB"))
        assert np.array_equal((got.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), expected)


@pytest.mark.parametrize("quality", [75, 50, 20])
def test_differentiable_jpeg_surrogate_is_close_to_the_codec(quality):
    """Tolerance: mean |surrogate - codec| at most 3/255 and at most 40% of the codec's own mean change
    |codec(x) - x| (measured on the built-in photos: 1.2-1.5/255 against 3.7-6.8/255)."""
    x = to_tensor(photos(64))
    jpeg = build({"method": "jpeg", "quality": quality})
    codec, surrogate = jpeg.recover(x), jpeg.surrogate(x)
    gap, change = (surrogate - codec).abs().mean().item(), (codec - x).abs().mean().item()
    assert gap <= 3 / 255 and gap <= 0.4 * change
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(jpeg.surrogate(x).sum(), x)
    assert grad.abs().sum() > 0


def test_median_filter_takes_the_window_median_and_passes_gradients():
    x = torch.zeros(1, 3, 5, 5)
    x[0, :, 2, 2] = 1.0  # an isolated bright pixel is removed ...
    x[0, 0, :, 1:4] = 0.5  # ... a 3-wide stripe survives
    out = build({"method": "median", "size": 3}).recover(x)
    assert out[0, 1, 2, 2] == 0 and out[0, 0, 2, 2] == 0.5
    y = torch.rand(2, 3, 8, 8, requires_grad=True)
    (grad,) = torch.autograd.grad(build({"method": "median", "size": 3}).recover(y).sum(), y)
    assert grad.sum().item() == pytest.approx(y.numel())  # each output passes its gradient to one input pixel


def test_tvm_smooths_noise_and_keeps_flat_images():
    flat = torch.full((1, 3, 16, 16), 0.4)
    tvm = build({"method": "tvm", "weight": 0.05})
    assert torch.allclose(tvm.recover(flat), flat, atol=1e-6)
    noisy = (flat + 0.05 * torch.randn(flat.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert (tvm.recover(noisy) - flat).abs().mean() < 0.5 * (noisy - flat).abs().mean()


def test_tvm_surrogate_is_close_to_scikit_images_denoising_and_differentiable():
    """Tolerance: mean |surrogate - scikit-image| at most 1/255 and at most 25% of the denoising's own mean
    change (measured on 100 built-in photos and flat shapes: 0.32-0.33/255 against 3.2-5.0/255)."""
    x = to_tensor(np.concatenate([photos(32), np.stack([ShapesSource(0, 32).load(i, "flat")[0] for i in range(32)])]))
    tvm = build({"method": "tvm", "weight": 0.05})
    reference, surrogate = tvm.recover(x), tvm.surrogate(x)
    gap, change = (surrogate - reference).abs().mean().item(), (reference - x).abs().mean().item()
    assert gap <= 1 / 255 and gap <= 0.25 * change
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(tvm.surrogate(x).square().sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("spec, needs", [
    ({"method": "jpeg", "quality": 50}, {"differentiable": False, "random": False, "surrogate": True}),
    ({"method": "tvm"}, {"differentiable": False, "random": False, "surrogate": True}),
    ({"method": "median"}, {"differentiable": True, "random": False, "surrogate": False}),
    ({"method": "nrp"}, {"differentiable": True, "random": False, "surrogate": False}),
    ({"method": "nrp_dynamic"}, {"differentiable": True, "random": True, "surrogate": False}),
    ({"method": "pix2pix"}, {"differentiable": True, "random": False, "surrogate": False}),
    ({"method": "adversarial_training"}, {"differentiable": True, "random": False, "surrogate": False})])
def test_each_defence_declares_what_adaptive_attacks_need(spec, needs):
    assert defences.adaptive_needs(spec) == needs


@pytest.mark.parametrize("spec, match", [({"method": "jpeg", "quality": 0}, "quality"),
                                         ({"method": "median", "size": 2}, "odd"),
                                         ({"method": "tvm", "weight": 0}, "positive")])
def test_bad_parameters_are_refused_naming_them(spec, match):
    with pytest.raises(ValueError, match=match):
        build(spec)
