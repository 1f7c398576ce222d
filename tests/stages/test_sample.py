"""Stage ``sample``: disjoint pools, byte-identical for a seed, different for another."""

from __future__ import annotations

import numpy as np

from advrecover.data.pools import read_pool
from advrecover.io import sha256_file
from advrecover.stages import sample

POOLS = ("cae", "aae", "test", "victim")


def draw(tmp_path, params, seed, name="out", workers=1):
    s = params["sample"]
    out = tmp_path / name
    cfg = sample.SampleConfig(pools=s["pools"], image_size=s["image_size"], seed=seed,
                              max_bad_fraction=s["max_bad_fraction"])
    metrics = sample.run(cfg=cfg, out_dir=out, metrics_path=out / "m.json", workers=workers, progress=False)
    return out, metrics


def test_pools_from_one_source_never_share_an_image(tmp_path, params):
    out, _ = draw(tmp_path, params, 0)
    pools = {p: read_pool(out / f"{p}.h5", verify=True) for p in POOLS}
    by_source = {}
    for name, pool in pools.items():
        key = "photos" if pool.attrs["dataset"] == "photos" else "shapes"
        by_source.setdefault(key, []).append(set(pool.source_index.tolist()))
        assert len(set(pool.source_index.tolist())) == len(pool.source_index)
    shapes = by_source["shapes"]
    assert len(shapes) == 3
    for i in range(3):
        for j in range(i + 1, 3):
            assert not shapes[i] & shapes[j]
    # and no two pools hold the same pixels
    flat = np.concatenate([p.images.reshape(len(p.images), -1) for p in pools.values()])
    assert len(np.unique(flat, axis=0)) == len(flat)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, params):
    a, ma = draw(tmp_path, params, 0, "a", workers=1)
    b, mb = draw(tmp_path, params, 0, "b", workers=2)
    c, mc = draw(tmp_path, params, 1, "c")
    for p in POOLS:
        assert sha256_file(a / f"{p}.h5") == sha256_file(b / f"{p}.h5")
        assert sha256_file(a / f"{p}.h5") != sha256_file(c / f"{p}.h5")
        assert ma[p]["checksum"] == mb[p]["checksum"] != mc[p]["checksum"]


def test_pool_contents_and_attributes(tmp_path, params):
    out, metrics = draw(tmp_path, params, 0)
    test = read_pool(out / "test.h5")
    cae = read_pool(out / "cae.h5")
    size = params["sample"]["image_size"]
    assert test.images.shape == (params["sample"]["pools"]["test"]["n"], size, size, 3)
    assert test.images.dtype == np.uint8 and test.labelled and len(test.class_names) == 10
    assert set(test.labels.tolist()) == set(range(10))  # balanced classes
    assert not cae.labelled and (cae.labels == -1).all()
    assert test.attrs["source"] == "builtin" and test.attrs["seed"] == 0 and test.attrs["image_size"] == size
    assert metrics["test"]["checksum"] == test.attrs["checksum"]
