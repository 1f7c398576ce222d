"""Built-in offline data: photo patches and a two-domain, ten-class shapes task.

Nothing here downloads. ``photos`` cuts patches from the photographs that scikit-image ships
inside its package (the stand-in for the paper's COCO pool). ``shapes`` renders one of ten
shape classes per index, in two domains: ``textured`` (photo-like: shaded textured objects on
smooth textured backgrounds, the stand-in for CIFAR-10) and ``flat`` (flat-coloured or
outline "renditions" on plain backgrounds, the stand-in for ImageNet-R). Every image is a pure
function of (seed, index), so a pool is reproducible byte for byte and pools that take
different indices of one generator never share an image.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHAPE_CLASSES = (
    "disc", "ring", "triangle", "square", "star",
    "plus", "crescent", "arrow", "semicircle", "bar",
)

# Photographs bundled inside the scikit-image wheel (no fetch needed); grey ones become RGB.
BUNDLED_PHOTOS = (
    "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
    "hubble_deep_field.jpg", "retina.jpg", "ihc.png", "brick.png", "grass.png", "gravel.png",
    "camera.png", "coins.png", "moon.png", "horse.png", "cell.png", "page.png",
)

_DOMAIN_CODE = {"textured": 1, "flat": 2}


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _poly(points, angle, scale, cx, cy):
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + scale * (c * x - s * y), cy + scale * (s * x + c * y)) for x, y in points]


def _circle(r=1.0, dx=0.0, dy=0.0, n=48, start=0.0, stop=2 * math.pi):
    return [(dx + r * math.cos(t), dy + r * math.sin(t))
            for t in np.linspace(start, stop, n, endpoint=stop - start < 2 * math.pi)]


def _shape_layers(name: str):
    """(polygon, fill) layers in unit coordinates; fill 0 cuts a hole."""
    if name == "disc":
        return [(_circle(0.9), 255)]
    if name == "ring":
        return [(_circle(1.0), 255), (_circle(0.55), 0)]
    if name == "triangle":
        return [(_circle(1.05, n=3, start=-math.pi / 2, stop=1.5 * math.pi), 255)]
    if name == "square":
        return [([(-0.75, -0.75), (0.75, -0.75), (0.75, 0.75), (-0.75, 0.75)], 255)]
    if name == "star":
        pts = [((1.0 if k % 2 == 0 else 0.42) * math.cos(-math.pi / 2 + k * math.pi / 5),
                (1.0 if k % 2 == 0 else 0.42) * math.sin(-math.pi / 2 + k * math.pi / 5))
               for k in range(10)]
        return [(pts, 255)]
    if name == "plus":
        w = 0.3
        return [([(-w, -1), (w, -1), (w, 1), (-w, 1)], 255), ([(-1, -w), (1, -w), (1, w), (-1, w)], 255)]
    if name == "crescent":
        return [(_circle(1.0), 255), (_circle(0.85, dx=0.5), 0)]
    if name == "arrow":
        return [([(-1, -0.22), (0.15, -0.22), (0.15, -0.6), (1, 0), (0.15, 0.6), (0.15, 0.22), (-1, 0.22)], 255)]
    if name == "semicircle":
        return [([(x, y + 0.4) for x, y in _circle(1.0, n=33, start=math.pi, stop=2 * math.pi)], 255)]
    if name == "bar":
        return [([(-1, -0.25), (1, -0.25), (1, 0.25), (-1, 0.25)], 255)]
    raise KeyError(name)


def shape_mask(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A float mask in [0, 1] of shape ``label`` with random rotation, scale and position."""
    angle = rng.uniform(-math.pi / 6, math.pi / 6)
    scale = rng.uniform(0.28, 0.4) * size
    margin = scale * 1.05
    cx, cy = rng.uniform(margin, size - margin, size=2)
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    for poly, fill in _shape_layers(SHAPE_CLASSES[label]):
        draw.polygon(_poly(poly, angle, scale, cx, cy), fill=fill)
    return np.asarray(img, dtype=np.float32) / 255.0


def _smooth_field(rng, size, channels, cells):
    """Low-frequency random colour field (bilinear upsampling of a coarse grid)."""
    coarse = rng.uniform(0, 255, size=(cells, cells, channels)).astype(np.uint8)
    mode = "RGB" if channels == 3 else "L"
    img = Image.fromarray(coarse.squeeze(), mode).resize((size, size), Image.BILINEAR)
    out = np.asarray(img, dtype=np.float32) / 255.0
    return out if channels == 3 else out[..., None]


def _texture(rng, size):
    """A photo-like texture in [0, 1]: stripes, checks or blotches with grain."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    kind = rng.integers(3)
    if kind == 0:
        theta, freq = rng.uniform(0, math.pi), rng.uniform(3, 9)
        t = 0.5 + 0.5 * np.sin(2 * math.pi * freq * (xx * math.cos(theta) + yy * math.sin(theta)))
    elif kind == 1:
        f = rng.uniform(3, 7)
        t = ((np.floor(xx * f) + np.floor(yy * f)) % 2).astype(np.float32)
    else:
        t = _smooth_field(rng, size, 1, int(rng.integers(4, 9)))[..., 0]
    return t[..., None]


def render_shape(label: int, domain: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Render one (size, size, 3) uint8 image of class ``label`` in ``domain``."""
    big = 2 * size  # supersample, then downscale: anti-aliased edges
    mask = shape_mask(label, big, rng)[..., None]
    if domain == "textured":
        bg = 0.6 * _smooth_field(rng, big, 3, int(rng.integers(2, 5))) + 0.4 * _texture(rng, big) * rng.uniform(0, 1, 3)
        base = rng.uniform(0, 1, 3)
        # keep the object's brightness apart from the background's
        target = 0.85 if bg.mean() < 0.5 else 0.15
        base = np.clip(base + (target - base.mean()), 0, 1)
        fg = base * (0.65 + 0.35 * _texture(rng, big))
        yy = np.linspace(1.15, 0.75, big, dtype=np.float32)[:, None, None]
        fg = np.clip(fg * yy, 0, 1)  # light from above
        shadow = np.asarray(Image.fromarray((mask[..., 0] * 255).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(big / 24)), dtype=np.float32)[..., None] / 255.0
        bg = bg * (1 - 0.35 * np.roll(shadow, (big // 32, big // 32), axis=(0, 1)))
        img = mask * fg + (1 - mask) * bg
        img = img + rng.normal(0, 0.03, img.shape)
    else:
        bg = np.ones((big, big, 3), np.float32) * rng.uniform(0.85, 1.0, 3)
        colour = rng.uniform(0, 0.8, 3)
        m8 = Image.fromarray((mask[..., 0] * 255).astype(np.uint8))
        inner = np.asarray(m8.filter(ImageFilter.MinFilter(2 * max(1, big // 32) + 1)), np.float32)[..., None] / 255.0
        outline = np.clip(mask - inner, 0, 1)
        if rng.uniform() < 0.3:  # sketch: outline only
            img = bg * (1 - outline) + outline * colour * 0.3
        else:
            img = bg * (1 - mask) + inner * colour + outline * 0.05
    img = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).resize((size, size), Image.BOX)
    return np.asarray(img, dtype=np.uint8)


class ShapesSource:
    """Infinite indexed source of shape images; the class of index i is i mod 10."""

    class_names = SHAPE_CLASSES

    def __init__(self, seed: int, size: int):
        self.seed, self.size = seed, size

    def load(self, index: int, domain: str) -> tuple[np.ndarray, int]:
        label = int(index % len(SHAPE_CLASSES))
        if domain == "mixed":
            domain = "textured" if _rng(self.seed, 3, index).uniform() < 0.5 else "flat"
        rng = _rng(self.seed, _DOMAIN_CODE[domain], index)
        return render_shape(label, domain, self.size, rng), label


def _photo_dir() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent


class PhotosSource:
    """Infinite indexed source of random patches from scikit-image's bundled photographs."""

    class_names = ()

    def __init__(self, seed: int, size: int):
        self.seed, self.size = seed, size
        folder = _photo_dir()
        self.photos = []
        for name in BUNDLED_PHOTOS:
            path = folder / name
            if path.is_file():
                self.photos.append(np.asarray(Image.open(path).convert("RGB")))
        if not self.photos:
            raise FileNotFoundError(f"no bundled photographs found in {folder}; is scikit-image installed?")

    def load(self, index: int, domain: str | None = None) -> tuple[np.ndarray, int]:
        rng = _rng(self.seed, 4, index)
        photo = self.photos[int(rng.integers(len(self.photos)))]
        h, w = photo.shape[:2]
        side = int(rng.integers(min(self.size, h, w), max(min(h, w) // 3, self.size) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        patch = Image.fromarray(photo[y:y + side, x:x + side])
        if rng.uniform() < 0.5:
            patch = patch.transpose(Image.FLIP_LEFT_RIGHT)
        return np.asarray(patch.resize((self.size, self.size), Image.BICUBIC), dtype=np.uint8), -1
