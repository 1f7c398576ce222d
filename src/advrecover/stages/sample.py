"""Stage ``sample``: draw the disjoint image pools ``cae``, ``aae``, ``test`` and ``victim``.

The cross-domain protocol of Li, Angelov and Suri (Sec. III) needs three pools that never overlap (``cae``
trains the CAE, ``aae`` the AAE, ``test`` is held out), plus the victim's own training images.
Pools that read one source consume a single seeded permutation of its indices in the fixed
order :data:`POOL_ORDER`, so they are disjoint by construction and reproducible for a seed.
Unreadable images are skipped and counted; above ``max_bad_fraction`` the stage fails.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.pools import POOL_ORDER, write_pool
from ..data.sources import DataError, open_source
from ..io import write_json

log = logging.getLogger(__name__)



class IndexStream:
    """The indices of one source in the order pools consume them (a seeded permutation, or
    0, 1, 2, ... for an infinite generator); indices read ahead but not used are given back."""

    def __init__(self, length: int | None, seed: int):
        self._it = itertools.count() if length is None else iter(np.random.default_rng(seed).permutation(length).tolist())
        self._back: list[int] = []

    def take(self, k: int) -> list[int]:
        out, self._back = self._back[:k], self._back[k:]
        return out + list(itertools.islice(self._it, k - len(out)))

    def give_back(self, indices: list[int]) -> None:
        self._back = list(indices) + self._back


_worker_source = None


def _init_worker(source) -> None:
    global _worker_source
    _worker_source = source


def _load(i: int):
    try:
        return _worker_source.load(i), None
    except Exception as exc:  # an unreadable image is skipped and counted, whatever the decoder raised
        return None, f"{type(exc).__name__}: {exc}"


def draw_pool(source, stream: IndexStream, n: int, name: str, workers: int = 1, progress: bool = True):
    """Take ``n`` readable images from ``stream``, decoding in ``workers`` processes.

    The result does not depend on ``workers``: images are consumed in stream order.
    Returns images, labels, source indices and the (where, why) list of unreadable images.
    """
    images = np.zeros((n, source.size, source.size, 3), np.uint8)
    labels, index, bad = np.full(n, -1, np.int64), np.zeros(n, np.int64), []
    got = 0
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, ctx, initializer=_init_worker, initargs=(source,)) as pool, \
            tqdm(total=n, desc=f"sample {name}", unit="img", disable=not progress, mininterval=1) as bar:
        while got < n:
            batch = stream.take(min(1024, n - got + 8))
            if not batch:
                break
            for k, (i, (item, error)) in enumerate(zip(batch, pool.map(_load, batch, chunksize=16))):
                if got == n:
                    stream.give_back(batch[k:])
                    break
                if error:
                    bad.append((source.describe(i), error))
                    continue
                images[got], labels[got] = item
                index[got] = i
                got += 1
                bar.update()
    return images[:got], labels[:got], index[:got], bad


@dataclass(frozen=True)
class SampleConfig:
    """The pools to draw (name -> source entry of ``sample.pools``), their image size, the seed and
    the share of unreadable images tolerated (``sample.max_bad_fraction``)."""
    pools: dict
    image_size: int
    seed: int
    max_bad_fraction: float


def from_params(p: dict, args) -> dict:
    """The values of ``run`` that come from the validated params (and this job's ``args``): the
    one translation, used by the CLI and by :func:`workload`."""
    s = p["sample"]
    return {"cfg": SampleConfig(pools=s["pools"], image_size=s["image_size"], seed=p["seed"],
                                max_bad_fraction=s["max_bad_fraction"])}


def run(*, cfg: SampleConfig, out_dir: str | Path, metrics_path: str | Path, workers: int = 1,
        progress: bool = True) -> dict:
    """Draw every pool of ``cfg.pools`` and write ``<out_dir>/<name>.h5``."""
    pools, image_size, seed, max_bad_fraction = cfg.pools, cfg.image_size, cfg.seed, cfg.max_bad_fraction
    unknown = set(pools) - set(POOL_ORDER)
    if unknown:
        raise ValueError(f"unknown pool names {sorted(unknown)}; expected {POOL_ORDER}")
    sources = {name: open_source(pools[name], seed, image_size, f"sample.pools.{name}") for name in POOL_ORDER}
    streams, metrics = {}, {}  # every source opened (its path checked) before any pool is drawn
    for name, source in sources.items():
        entry, param = pools[name], f"sample.pools.{name}"
        key = source.identity
        if key not in streams:
            streams[key] = IndexStream(source.length, seed)
        images, labels, index, bad = draw_pool(source, streams[key], entry["n"], name, workers, progress)
        tried = len(images) + len(bad)
        for where, why in bad:
            log.warning("skipped unreadable image %s (%s)", where, why)
        if tried and len(bad) / tried > max_bad_fraction:
            examples = "; ".join(w for w, _ in bad[:3])
            raise DataError(f"{param}: {len(bad)} of {tried} images unreadable ({len(bad) / tried:.1%} > "
                            f"sample.max_bad_fraction={max_bad_fraction}), e.g. {examples}")
        if len(images) < entry["n"]:
            raise DataError(f"{param}.n: asked for {entry['n']} images but source {key} has only "
                            f"{len(images)} readable ones left after the pools before it")
        attrs = {"pool": name, "source": entry["source"], "dataset": entry.get("dataset", ""),
                 "path": entry.get("path", ""), "seed": seed, "image_size": image_size,
                 "class_names": list(source.class_names)}
        digest = write_pool(Path(out_dir) / f"{name}.h5", images, labels, index, attrs)
        metrics[name] = {"n": int(len(images)), "n_bad": len(bad), "labelled": bool((labels >= 0).all()),
                         "checksum": digest}
        log.info("pool %s: %d images from %s (%d unreadable skipped)", name, len(images), key, len(bad))
    write_json(metrics_path, metrics)
    return metrics


def workload(p: dict, job) -> list:
    """No network runs here (file work only): nothing for benchmarks/scale.py to cost."""
    return []
