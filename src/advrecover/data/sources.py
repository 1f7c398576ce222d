"""Image sources a pool can be drawn from, each read in its own on-disk format.

A source is indexed: ``load(i)`` returns image ``i`` as (size, size, 3) uint8 and its label
(-1 when the source has none), raising on an unreadable file. ``identity`` names what two
pools must not share: pools with the same identity take disjoint indices. Register a new
format by adding a class to :data:`SOURCES`.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from .builtin import DigitsSource, PhotosSource, ShapesSource

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class DataError(RuntimeError):
    """A dataset path is missing or its contents cannot be read."""


def fit(image: Image.Image, size: int) -> np.ndarray:
    """Resize the shorter side to ``size`` and centre-crop to a square (torchvision's Resize+CenterCrop).
    Grayscale, palette and RGBA images become RGB (alpha dropped); 16-bit ones keep their top 8 bits
    (PIL's own conversion would clip every value above 255 to white)."""
    if image.mode.startswith("I;16") or image.mode == "I":
        wide = np.asarray(image, dtype=np.int64)
        image = Image.fromarray((wide >> 8 if image.mode != "I" or wide.max() > 255 else wide).astype(np.uint8), "L")
    image = image.convert("RGB")
    w, h = image.size
    if (w, h) != (size, size):
        s = size / min(w, h)
        nw, nh = max(size, round(w * s)), max(size, round(h * s))
        image = image.resize((nw, nh), Image.BICUBIC, reducing_gap=3.0)
        left, top = (nw - size) // 2, (nh - size) // 2
        image = image.crop((left, top, left + size, top + size))
    return np.asarray(image, dtype=np.uint8)


def read_image(path: Path, size: int) -> np.ndarray:
    """Decode an image file fully (so truncated files fail here) and fit it to ``size``."""
    with Image.open(path) as im:
        im.load()
        return fit(im, size)


def _require_dir(path: str, param: str) -> Path:
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise DataError(f"{param}: not a directory: {p}")
    if not p.is_dir():
        raise DataError(f"{param}: directory not found: {p}")
    return p


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers, bytes, numbers and numpy arrays, nothing else: a CIFAR-10 batch
    is a pickle, and a full unpickle would run whatever code a tampered file names."""

    ALLOWED = {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")}
    ALLOWED |= {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
                ("numpy._core.numeric", "_frombuffer")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only arrays and plain containers")
        return super().find_class(module, name)


class BuiltinSource:
    """The offline default: scikit-image photo patches, or the rendered digits or shapes task
    (``<task>_<domain>``)."""

    TASKS = {"digits": DigitsSource, "shapes": ShapesSource}

    def __init__(self, cfg: dict, seed: int, size: int, param: str):
        self.dataset = cfg["dataset"]
        if self.dataset == "photos":
            self.gen, self.domain, self.identity = PhotosSource(seed, size), None, "builtin:photos"
        else:
            task, self.domain = self.dataset.split("_", 1)
            self.gen, self.identity = self.TASKS[task](seed, size), f"builtin:{task}"
        self.class_names, self.size = tuple(self.gen.class_names), size
        self.length = None  # infinite: index i is a pure function of (seed, i)

    def load(self, index: int):
        return self.gen.load(index, self.domain)

    def describe(self, index: int) -> str:
        return f"{self.identity}#{index}"


class Cifar10Source:
    """The official python-pickle batches (``cifar-10-batches-py``, or its parent directory)."""

    TRAIN = [f"data_batch_{k}" for k in range(1, 6)]
    TEST = ["test_batch"]

    def __init__(self, cfg: dict, seed: int, size: int, param: str):
        root = Path(cfg["path"])
        if cfg.get("download", False):
            import torchvision

            for train in (True, False):
                torchvision.datasets.CIFAR10(root=str(root), train=train, download=cfg["download"])
        root = _require_dir(str(root), f"{param}.path")
        if (root / "cifar-10-batches-py").is_dir():
            root = root / "cifar-10-batches-py"
        names = {"train": self.TRAIN, "test": self.TEST, "all": self.TRAIN + self.TEST}[cfg["split"]]
        data, labels = [], []
        for name in names:
            batch = self._unpickle(root / name, param)
            data.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.extend(int(v) for v in batch[b"labels"])
        meta = self._unpickle(root / "batches.meta", param)
        self.class_names = tuple(n.decode() for n in meta[b"label_names"])
        self.images, self.labels = np.concatenate(data), np.asarray(labels, dtype=np.int64)
        self.size, self.length = size, len(self.labels)
        self.identity = f"cifar10:{root.resolve()}"

    @staticmethod
    def _unpickle(path: Path, param: str) -> dict:
        if not path.is_file():
            raise DataError(f"{param}.path: CIFAR-10 file missing: {path}")
        try:
            with open(path, "rb") as fh:
                batch = _ArrayUnpickler(fh, encoding="bytes").load()
            if not isinstance(batch, dict):
                raise TypeError(f"expected a dict, got {type(batch).__name__}")
            return batch
        except Exception as exc:  # any unpickling failure means the file is corrupt
            raise DataError(f"{param}.path: corrupt CIFAR-10 batch {path}: {exc}") from exc

    def load(self, index: int):
        img = self.images[index]
        if self.size != 32:
            img = fit(Image.fromarray(img), self.size)
        return img, int(self.labels[index])

    def describe(self, index: int) -> str:
        return f"{self.identity}#{index}"


class FileListSource:
    """Shared reader for sources made of image files: subclasses set ``files`` and ``labels``."""

    files: list[Path]
    labels: list[int]

    def load(self, index: int):
        return read_image(self.files[index], self.size), self.labels[index]

    def describe(self, index: int) -> str:
        return str(self.files[index])


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


class CocoSource(FileListSource):
    """A directory of JPEGs such as COCO's ``val2017/`` (searched recursively), unlabelled."""

    def __init__(self, cfg: dict, seed: int, size: int, param: str):
        root = _require_dir(cfg["path"], f"{param}.path")
        self.files = _image_files(root)
        if not self.files:
            raise DataError(f"{param}.path: no image files under {root}")
        self.labels = [-1] * len(self.files)
        self.class_names, self.size, self.length = (), size, len(self.files)
        self.identity = f"files:{root.resolve()}"


class ImageFolderSource(FileListSource):
    """Any class-per-directory tree (torchvision ImageFolder layout); classes sorted by name."""

    class_pattern: str | None = None

    def __init__(self, cfg: dict, seed: int, size: int, param: str):
        root = _require_dir(cfg["path"], f"{param}.path")
        classes = sorted(d.name for d in root.iterdir() if d.is_dir())
        if not classes:
            raise DataError(f"{param}.path: no class directories under {root}")
        bad = [c for c in classes if self.class_pattern and not re.match(self.class_pattern, c)]
        if bad:
            raise DataError(f"{param}.path: class directories must match {self.class_pattern}, found {bad[:3]}")
        self.files, self.labels = [], []
        for label, name in enumerate(classes):
            files = _image_files(root / name)
            self.files += files
            self.labels += [label] * len(files)
        if not self.files:
            raise DataError(f"{param}.path: no image files under {root}")
        self.class_names, self.size, self.length = tuple(classes), size, len(self.files)
        self.identity = f"files:{root.resolve()}"


class ImageNetRSource(ImageFolderSource):
    """ImageNet-R: the ImageFolder layout with one WordNet-id directory (``n01443537``) per class."""

    class_pattern = r"^n\d{8}$"


class Hdf5Source:
    """A pool file written elsewhere (same layout as ``data/pools/<pool>.h5``)."""

    def __init__(self, cfg: dict, seed: int, size: int, param: str):
        path = Path(cfg["path"])
        if not path.is_file():
            raise DataError(f"{param}.path: file not found: {path}")
        try:
            with h5py.File(path, "r") as f:
                self.images = f["images"][...]
                self.labels = f["labels"][...] if "labels" in f else np.full(len(self.images), -1)
                names = f.attrs.get("class_names", "[]")
        except Exception as exc:
            raise DataError(f"{param}.path: cannot read HDF5 pool {path}: {exc}") from exc
        self.class_names = tuple(json.loads(names))
        self.size, self.length = size, len(self.images)
        self.identity = f"hdf5:{path.resolve()}"

    def load(self, index: int):
        img = self.images[index]
        if img.shape[:2] != (self.size, self.size):
            img = fit(Image.fromarray(img), self.size)
        return img, int(self.labels[index])

    def describe(self, index: int) -> str:
        return f"{self.identity}#{index}"


SOURCES = {
    "builtin": BuiltinSource,
    "cifar10": Cifar10Source,
    "coco": CocoSource,
    "imagefolder": ImageFolderSource,
    "imagenet_r": ImageNetRSource,
    "hdf5": Hdf5Source,
}


def open_source(cfg: dict, seed: int, size: int, param: str):
    """Open the source a pool's config names; ``param`` (e.g. ``sample.pools.aae``) prefixes errors."""
    return SOURCES[cfg["source"]](cfg, seed, size, param)
