"""Built-in offline data: pure functions of (seed, index), two distinct domains, bundled photos."""

from __future__ import annotations

import numpy as np

from advrecover.data.builtin import SHAPE_CLASSES, PhotosSource, ShapesSource


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
