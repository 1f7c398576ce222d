"""Built-in offline data: photo patches, a two-domain digits task and a two-domain shapes task.

Nothing here downloads. ``photos`` cuts patches from the photographs that scikit-image ships
inside its package (the stand-in for the paper's COCO pool). ``digits`` (the default task, an
analogue of SVHN) renders one digit per index in the fonts matplotlib ships, small, rotated and
off-centre, with its neighbours cut off at the edges, low contrast, blur and noise, in two
domains: ``photo`` (on patches of the photographs, the stand-in for CIFAR-10) and ``rendition``
(outlines and flat colours in other fonts on plain grounds, the stand-in for ImageNet-R).
``shapes`` renders ten large shape silhouettes in a ``textured`` and a ``flat`` domain: an easy
task that tiny models learn in seconds (the unit tests' stored victim). Every image is a pure
function of (seed, index), so a pool is reproducible byte for byte and pools that take
different indices of one generator never share an image.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

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

_DOMAIN_CODE = {"textured": 1, "flat": 2, "photo": 5, "rendition": 6}


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
        return self.patch(_rng(self.seed, 4, index)), -1

    def patch(self, rng: np.random.Generator) -> np.ndarray:
        """A random square crop of a random photograph, at ``size``, flipped half of the time."""
        photo = self.photos[int(rng.integers(len(self.photos)))]
        h, w = photo.shape[:2]
        side = int(rng.integers(min(self.size, h, w), max(min(h, w) // 3, self.size) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        patch = Image.fromarray(photo[y:y + side, x:x + side])
        if rng.uniform() < 0.5:
            patch = patch.transpose(Image.FLIP_LEFT_RIGHT)
        return np.asarray(patch.resize((self.size, self.size), Image.BICUBIC), dtype=np.uint8)


DIGIT_CLASSES = tuple("0123456789")
# Faces that matplotlib ships (mpl-data/fonts/ttf): the photo domain's and the renditions' are disjoint.
PHOTO_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf",
               "DejaVuSerif-Bold.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf")
RENDITION_FONTS = ("DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "cmr10.ttf",
                   "cmss10.ttf", "cmtt10.ttf", "cmb10.ttf", "STIXGeneralItalic.ttf", "DejaVuSerif-Italic.ttf")


@functools.lru_cache(maxsize=None)
def _font(name: str, px: int) -> ImageFont.FreeTypeFont:
    import matplotlib

    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), px)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], np.float32)


def digit_mask(label: int, fonts: tuple, big: int, rng: np.random.Generator, neighbours: float,
               outline: bool) -> np.ndarray:
    """A float mask in [0, 1] of digit ``label``, its height 40-70% of the image, off-centre and
    rotated, with (probability ``neighbours``) the digits beside it cut off at the edges, as in
    house-number crops; ``outline`` draws the strokes' contours only."""
    font = _font(fonts[int(rng.integers(len(fonts)))], int(big * rng.uniform(0.45, 0.8)))
    text = str(label)
    cx, cy = big * (0.5 + rng.uniform(-0.12, 0.12, 2))
    img = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(img)
    stroke = max(1, big // 40) if outline else 0
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x, y = cx - (left + right) / 2, cy - (top + bottom) / 2
    pieces = [(text, x)]
    if rng.uniform() < neighbours:
        gap = font.size * rng.uniform(0.0, 0.15)
        before, after = (str(d) for d in rng.integers(10, size=2))
        pieces.append((before, x + left - gap - draw.textbbox((0, 0), before, font=font)[2]))
        pieces.append((after, x + right + gap - draw.textbbox((0, 0), after, font=font)[0]))
    for piece, px in pieces:
        draw.text((px, y), piece, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
        if outline:
            draw.text((px, y), piece, font=font, fill=0)
    img = img.rotate(rng.uniform(-15, 15), resample=Image.BILINEAR, center=(cx, cy))
    return np.asarray(img, dtype=np.float32) / 255.0


def _contrasting(ground: float, rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """A random colour whose luma differs from ``ground`` by ``low``-``high`` (toward the free side)."""
    delta = rng.uniform(low, high) * (1 if ground < 0.5 else -1)
    colour = rng.uniform(0, 1, 3).astype(np.float32)
    return np.clip(colour + (ground + delta - _luma(colour)), 0, 1)


def _stray_lines(img: np.ndarray, ground: float, rng: np.random.Generator, most: int, contrast: tuple) -> np.ndarray:
    """``img`` crossed by up to ``most`` straight lines 1-4 pixels wide (of the output), in a colour
    ``contrast`` away from the ``ground``'s luma: clutter that crosses the digit as often as not."""
    big = img.shape[0]
    draw = ImageDraw.Draw(stray := Image.new("L", (big, big), 0))
    for _ in range(int(rng.integers(most + 1))):
        draw.line([tuple(rng.uniform(0, big, 2)), tuple(rng.uniform(0, big, 2))], fill=255,
                  width=int(rng.integers(1, max(2, big // 16))))
    lines = np.asarray(stray, np.float32)[..., None] / 255.0
    return img * (1 - lines) + _contrasting(ground, rng, *contrast) * lines


def _finish(img: np.ndarray, rng: np.random.Generator, blur: float, noise: tuple, size: int) -> np.ndarray:
    """Blur (Gaussian, sigma up to ``blur`` pixels of the output), sensor noise (sigma drawn from
    the range ``noise``), then the box downscale to ``size`` that anti-aliases every edge."""
    big = img.shape[0]
    out = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
    out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0, blur) * big / size))
    arr = np.asarray(out, np.float32) / 255.0 + rng.normal(0, rng.uniform(*noise), (big, big, 3))
    out = Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8)).resize((size, size), Image.BOX)
    return np.asarray(out, dtype=np.uint8)


class DigitsSource:
    """Infinite indexed source of house-number-like digit crops; the class of index i is i mod 10.

    ``photo``: faces of PHOTO_FONTS in low-contrast colours on patches of the bundled photographs,
    with neighbours, a stray line, blur and sensor noise. ``rendition``: faces of RENDITION_FONTS,
    filled or (30%) as outlines, in flat colours on plain grounds with up to two stray lines,
    noiseless. ``mixed``: either, by a coin per index."""

    class_names = DIGIT_CLASSES

    def __init__(self, seed: int, size: int):
        self.seed, self.size = seed, size
        self.photos = PhotosSource(seed, 2 * size)

    def load(self, index: int, domain: str) -> tuple[np.ndarray, int]:
        label = int(index % len(DIGIT_CLASSES))
        if domain == "mixed":
            domain = "photo" if _rng(self.seed, 7, index).uniform() < 0.5 else "rendition"
        rng = _rng(self.seed, _DOMAIN_CODE[domain], index)
        render = self._photo if domain == "photo" else self._rendition
        return render(label, rng), label

    def _photo(self, label: int, rng: np.random.Generator) -> np.ndarray:
        big = 2 * self.size
        ground = self.photos.patch(rng).astype(np.float32) / 255.0
        mask = digit_mask(label, PHOTO_FONTS, big, rng, neighbours=0.5, outline=False)[..., None]
        under = float((_luma(ground) * mask[..., 0]).sum() / max(mask.sum(), 1.0))  # the ground behind the ink
        ink = _contrasting(under, rng, 0.25, 0.6)
        img = _stray_lines(ground * (1 - mask) + ink * mask, float(_luma(ground).mean()), rng, 1, (0.05, 0.4))
        return _finish(img, rng, blur=0.8, noise=(0.01, 0.04), size=self.size)

    def _rendition(self, label: int, rng: np.random.Generator) -> np.ndarray:
        big = 2 * self.size
        ground = rng.uniform(0, 1, 3).astype(np.float32)
        outline = rng.uniform() < 0.3
        mask = digit_mask(label, RENDITION_FONTS, big, rng, neighbours=0.8, outline=outline)[..., None]
        img = ground * (1 - mask) + _contrasting(float(_luma(ground)), rng, 0.25, 0.6) * mask
        img = _stray_lines(img, float(_luma(ground)), rng, 2, (0.12, 0.55))
        return _finish(img, rng, blur=0.5, noise=(0.0, 0.0), size=self.size)
