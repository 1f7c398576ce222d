"""The adversarial-set format: ``data/adversarial/<pool>/<attack>.h5``.

Datasets (one row per attacked image, chunked per batch, images compressed; see ``CODECS``):
``images`` (N, H, W, 3) in the stored dtype, ``pool_index`` (row in the pool file), ``label``
(the pool's label, -1 if none), ``pred_clean`` and ``pred_adv`` (the victim's predictions on
the clean image and on the *stored* adversarial image), ``success`` (pred_adv differs from the
attack's target: the label, or pred_clean where the pool is unlabelled or its labels are not the
victim's classes), ``l2`` and ``linf`` (perturbation norms of the stored image, pixels in [0, 1]),
``margin`` (the victim's top-1 minus top-2 logit on the stored image: how far it sits from a
decision boundary; near 0 its label hangs on floating-point rounding).

Attributes: ``attack`` (instance name), ``method``, ``params`` (JSON), ``pool``,
``pool_checksum``, ``victim_checksum``, ``seed``, ``dtype``, ``target`` (``label`` or
``prediction``: what the attack moved away from), ``versions`` (JSON), and
``wall_time_s``. Readers check the two checksums against the current pool and victim.

Stored dtypes: ``float32`` is exact; ``float16`` rounds to 11 significant bits (about 5e-4
absolute error near 1); ``uint8`` rounds to multiples of 1/255, which erases perturbations
below half a grey level. Predictions, success flags and norms are always computed on the
stored values, so they describe the file as it is.

Blosc-compressed sets (the default) need the Blosc HDF5 filter to be read: ``import hdf5plugin``
before opening them with h5py (this module does), or set ``HDF5_PLUGIN_PATH`` to
``hdf5plugin.PLUGIN_PATH`` for other HDF5 tools. Choose ``lzf`` or ``gzip`` for files that must open
with nothing but h5py (lzf) or any HDF5 reader (gzip).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

DTYPES = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8}
COLUMNS = {"pool_index": np.int64, "label": np.int64, "pred_clean": np.int64, "pred_adv": np.int64,
           "success": np.bool_, "l2": np.float32, "linf": np.float32, "margin": np.float32}
# Image codecs, all lossless; Blosc LZ4 with byte shuffle writes fastest (figures in the README).
CODECS = {"blosc": dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)),
          "lzf": {"compression": "lzf", "shuffle": True},
          "gzip": {"compression": "gzip", "shuffle": True},
          "none": {}}


class ChecksumMismatch(ValueError):
    """An adversarial set was made against another victim or pool than the current one."""


def quantize(x: np.ndarray, dtype: str) -> np.ndarray:
    """Float images in [0, 1] to the stored dtype."""
    if dtype == "uint8":
        return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    return x.astype(DTYPES[dtype], copy=False)


def dequantize(x: np.ndarray) -> np.ndarray:
    """Stored images back to float32 in [0, 1] (float32 ones are returned as they are, not copied)."""
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32, copy=False)


def create(f: h5py.File, n: int, size: int, dtype: str, chunk: int, compression: str = "blosc") -> None:
    """Create the empty datasets of an ``n``-image set in an open file (``compression``: a
    ``CODECS`` name)."""
    chunk = max(1, min(chunk, n))
    f.create_dataset("images", (n, size, size, 3), dtype=DTYPES[dtype], chunks=(chunk, size, size, 3),
                     track_times=False, **CODECS[compression])
    for name, dt in COLUMNS.items():
        f.create_dataset(name, (n,), dtype=dt, chunks=(chunk,), track_times=False)


@dataclass
class AdversarialSet:
    images: np.ndarray  # stored dtype
    columns: dict
    attrs: dict = field(default_factory=dict)

    def __getattr__(self, name):
        if name in COLUMNS:
            return self.columns[name]
        raise AttributeError(name)

    @property
    def float_images(self) -> np.ndarray:
        return dequantize(self.images)


def read_attrs(path: str | Path) -> dict:
    """The file's HDF5 attributes as plain values (strings stay strings: nothing is evaluated)."""
    try:
        with h5py.File(path, "r") as f:
            return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
    except OSError as exc:
        raise OSError(f"{path} is not a readable HDF5 file (missing or truncated): {exc}") from exc


def check_provenance(path: str | Path, attrs: dict, victim_checksum: str | None, pool_checksum: str | None) -> None:
    """Raise :class:`ChecksumMismatch` naming the checksum that differs."""
    for what, expected in (("victim", victim_checksum), ("pool", pool_checksum)):
        recorded = attrs.get(f"{what}_checksum")
        if expected is not None and recorded != expected:
            raise ChecksumMismatch(
                f"{path}: made against a different {what} (its {what}_checksum is {str(recorded)[:12]}..., "
                f"the current {what} is {expected[:12]}...); re-run the attack stage for this set")


def read_adversarial(path: str | Path, victim_checksum: str | None = None, pool_checksum: str | None = None,
                     ) -> AdversarialSet:
    """Read a set; with checksums given, refuse a set made against another victim or pool."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"adversarial set not found: {path} (run the attack stages)")
    try:
        attrs = read_attrs(path)
        check_provenance(path, attrs, victim_checksum, pool_checksum)
        with h5py.File(path, "r") as f:
            missing = [k for k in ("images", *COLUMNS) if k not in f]
            if missing:
                raise ValueError(f"adversarial set {path}: dataset(s) {missing} missing (not written by the attack stage)")
            s = AdversarialSet(f["images"][...], {k: f[k][...] for k in COLUMNS}, attrs)
    except OSError as exc:
        raise OSError(f"adversarial set {path} is unreadable or truncated: {exc}") from exc
    check_layout(s, path)
    return s


def check_layout(s: AdversarialSet, path) -> None:
    """Raise ValueError naming the file and dataset when ``s`` is not in the format above."""
    images, n = s.images, len(s.images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"adversarial set {path}: 'images' must be (N, H, H, 3), got shape {images.shape}")
    if images.dtype not in [np.dtype(t) for t in DTYPES.values()]:
        raise ValueError(f"adversarial set {path}: 'images' must be one of {list(DTYPES)}, got {images.dtype}")
    for name, column in s.columns.items():
        if column.shape != (n,):
            raise ValueError(f"adversarial set {path}: '{name}' must hold {n} values, got shape {column.shape}")


def dump_attrs(f: h5py.File, attrs: dict) -> None:
    for key, value in attrs.items():
        f.attrs[key] = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list, tuple)) else value
