"""Built-in offline data: pure functions of (seed, index), two distinct domains, bundled photos and fonts."""

from __future__ import annotations

import numpy as np

import pytest
import torch
from PIL import Image, ImageDraw

from advrecover.data.builtin import (DIGIT_CLASSES, PHOTO_FONTS, RENDITION_FONTS, SHAPE_CLASSES, DigitsSource,
                                     PhotosSource, ShapesSource, _font)


def test_shapes_are_a_pure_function_of_seed_and_index():
    a, b, c = ShapesSource(0, 16), ShapesSource(0, 16), ShapesSource(1, 16)
    for i in (0, 7, 123):
        for domain in ("textured", "flat", "mixed"):
            img, label = a.load(i, domain)
            assert img.shape == (16, 16, 3) and img.dtype == np.uint8 and label == i % len(SHAPE_CLASSES)
            assert np.array_equal(img, b.load(i, domain)[0])
            assert not np.array_equal(img, c.load(i, domain)[0])


def test_domains_differ_in_style():
    src = ShapesSource(0, 32)
    textured = np.stack([src.load(i, "textured")[0] for i in range(50)]).astype(float)
    flat = np.stack([src.load(i, "flat")[0] for i in range(50)]).astype(float)
    # flat renditions sit on plain, light backgrounds: far less pixel variation at the borders
    assert flat[:, 0].std() < textured[:, 0].std() / 2 and flat.mean() > textured.mean()


def test_photo_patches_come_from_the_bundled_photographs():
    src = PhotosSource(0, 16)
    assert len(src.photos) >= 5
    patches = np.stack([src.load(i)[0] for i in range(20)])
    assert patches.shape == (20, 16, 16, 3) and src.load(3)[1] == -1
    assert len(np.unique(patches.reshape(20, -1), axis=0)) == 20
    assert np.array_equal(patches[3], PhotosSource(0, 16).load(3)[0])


@pytest.mark.parametrize("name", PHOTO_FONTS + RENDITION_FONTS)
def test_every_font_draws_every_digit(name):
    """A face without digit glyphs (matplotlib's DejaVuSansDisplay) would draw blank, mislabelled images."""
    inked = []
    for digit in DIGIT_CLASSES:
        img = Image.new("L", (64, 64), 0)
        ImageDraw.Draw(img).text((8, 4), digit, font=_font(name, 40), fill=255)
        inked.append(int((np.asarray(img) > 127).sum()))
    assert min(inked) > 40, inked
    assert not set(PHOTO_FONTS) & set(RENDITION_FONTS)


def test_digits_are_a_pure_function_of_seed_and_index():
    a, b, c = DigitsSource(0, 32), DigitsSource(0, 32), DigitsSource(1, 32)
    for i in (0, 7, 123):
        for domain in ("photo", "rendition", "mixed"):
            img, label = a.load(i, domain)
            assert img.shape == (32, 32, 3) and img.dtype == np.uint8 and label == i % 10
            assert np.array_equal(img, b.load(i, domain)[0])
            assert not np.array_equal(img, c.load(i, domain)[0])


def _domain_features(images: np.ndarray) -> torch.Tensor:
    """Per image: colour means and spreads, saturation, fine-texture energy (the residual of a 3x3
    mean) and the share of pixels near the median colour (a plain ground)."""
    x = torch.from_numpy(images).float().div(255).permute(0, 3, 1, 2)
    saturation = x.amax(1) - x.amin(1)
    residual = (x - torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)).abs().mean((1, 2, 3))
    plain = ((x - x.flatten(2).median(2).values[..., None, None]).abs().amax(1) < 0.06).float().mean((1, 2))
    return torch.cat([x.mean((2, 3)), x.std((2, 3)), saturation.mean((1, 2))[:, None],
                      saturation.std((1, 2))[:, None], residual[:, None], plain[:, None]], 1)


def test_a_classifier_tells_the_aae_domain_from_the_test_domain():
    """The domains are different, not only disjoint (the cross-domain protocol of Li, Angelov and Suri
    needs a shifted test domain): logistic regression on image statistics, trained on 300 images of
    each, is right on at least 90% of 200 held-out ones."""
    src = DigitsSource(0, 32)
    photo = np.stack([src.load(i, "photo")[0] for i in range(400)])
    rendition = np.stack([src.load(10_000 + i, "rendition")[0] for i in range(400)])
    feats, labels = _domain_features(np.concatenate([photo, rendition])), torch.cat([torch.zeros(400), torch.ones(400)])
    train = torch.cat([torch.arange(300), 400 + torch.arange(300)])
    held_out = torch.cat([torch.arange(300, 400), 400 + torch.arange(300, 400)])
    feats = (feats - feats[train].mean(0)) / (feats[train].std(0) + 1e-6)
    model = torch.nn.Linear(feats.shape[1], 1)
    opt = torch.optim.LBFGS(model.parameters(), max_iter=200)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(feats[train])[:, 0], labels[train])
        (loss + 1e-3 * model.weight.square().sum()).backward()
        return loss
    opt.step(closure)
    with torch.no_grad():
        right = ((model(feats[held_out])[:, 0] > 0).float() == labels[held_out]).float().mean().item()
    assert right >= 0.9, right
