"""The pool file format: ``data/pools/<pool>.h5``.

Datasets: ``images`` (N, H, W, 3) uint8, ``labels`` (N,) int64 (-1 when the source has no
labels), ``source_index`` (N,) int64 (the image's index in its source). Attributes: ``source``,
``dataset``, ``seed``, ``image_size``, ``class_names`` (JSON list) and ``checksum`` (SHA-256 of
images, labels and indices, which later stages record to detect a changed pool).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..io import atomic_path

CHUNK = 256  # images per HDF5 chunk: one write per batch, one read per batch
POOL_ORDER = ("cae", "aae", "test", "victim")  # the pools, in the order they draw from a shared source


@dataclass
class Pool:
    images: np.ndarray
    labels: np.ndarray
    source_index: np.ndarray
    attrs: dict = field(default_factory=dict)

    @property
    def labelled(self) -> bool:
        return bool(len(self.labels)) and bool((self.labels >= 0).all())

    @property
    def class_names(self) -> list[str]:
        return self.attrs.get("class_names", [])


def checksum(images: np.ndarray, labels: np.ndarray, source_index: np.ndarray) -> str:
    """Content checksum of a pool (independent of HDF5 layout and compression)."""
    h = hashlib.sha256()
    for start in range(0, len(images), CHUNK):
        h.update(np.ascontiguousarray(images[start:start + CHUNK]).tobytes())
    h.update(np.asarray(labels, dtype=np.int64).tobytes())
    h.update(np.asarray(source_index, dtype=np.int64).tobytes())
    return h.hexdigest()


def write_pool(path: str | Path, images: np.ndarray, labels, source_index, attrs: dict) -> str:
    """Write a pool atomically; returns its checksum."""
    labels = np.asarray(labels, dtype=np.int64)
    source_index = np.asarray(source_index, dtype=np.int64)
    digest = checksum(images, labels, source_index)
    with atomic_path(path) as tmp, h5py.File(tmp, "w", track_order=False) as f:
        chunks = (max(1, min(CHUNK, len(images))), *images.shape[1:]) if len(images) else None
        f.create_dataset("images", data=images, dtype=np.uint8, chunks=chunks,
                         compression="gzip" if chunks else None, shuffle=bool(chunks), track_times=False)
        f.create_dataset("labels", data=labels, track_times=False)
        f.create_dataset("source_index", data=source_index, track_times=False)
        for key, value in {**attrs, "checksum": digest}.items():
            f.attrs[key] = json.dumps(value) if isinstance(value, (list, tuple, dict)) else value
    return digest


def check_layout(pool: Pool, path) -> None:
    """Raise ValueError naming the file and dataset when ``pool`` is not in the format above."""
    images, n = pool.images, len(pool.images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"pool file {path}: 'images' must be (N, H, H, 3) RGB, got shape {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"pool file {path}: 'images' must be uint8, got {images.dtype}")
    for name in ("labels", "source_index"):
        column = getattr(pool, name)
        if column.shape != (n,) or column.dtype.kind not in "iu":
            raise ValueError(f"pool file {path}: '{name}' must be {n} integers, got {column.dtype} {column.shape}")


def read_pool(path: str | Path, verify: bool = False) -> Pool:
    """Read a pool file; ``verify`` recomputes the checksum and fails on a mismatch."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pool file not found: {path} (run the 'sample' stage)")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("images", "labels", "source_index") if k not in f]
            if missing:
                raise ValueError(f"pool file {path}: dataset(s) {missing} missing (not written by the sample stage)")
            pool = Pool(f["images"][...], f["labels"][...], f["source_index"][...], dict(f.attrs))
    except OSError as exc:
        raise OSError(f"pool file {path} is unreadable or truncated: {exc}") from exc
    check_layout(pool, path)
    if "class_names" in pool.attrs:
        pool.attrs["class_names"] = json.loads(pool.attrs["class_names"])
    if verify and checksum(pool.images, pool.labels, pool.source_index) != pool.attrs.get("checksum"):
        raise OSError(f"pool file {path}: content does not match its recorded checksum")
    return pool
