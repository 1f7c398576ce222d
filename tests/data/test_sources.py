"""Every real-dataset loader on a tiny fixture in its true on-disk format, corrupt files included."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest

from advrecover.data.pools import read_pool, write_pool
from advrecover.data.sources import DataError, open_source
from advrecover.stages import sample
from helpers import corrupt_image, save_image


def write_cifar(root, per_batch=4):
    """The official python-pickle layout: cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        batch = {b"batch_label": name.encode(), b"labels": [(k + j) % 10 for j in range(per_batch)],
                 b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"filenames": [f"{name}_{j}.png".encode() for j in range(per_batch)]}
        with open(d / name, "wb") as fh:
            pickle.dump(batch, fh)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    with open(d / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": names, b"num_cases_per_batch": per_batch}, fh)
    return d


def test_cifar10_reads_pickle_batches_and_split(tmp_path):
    write_cifar(tmp_path)
    src = open_source({"source": "cifar10", "path": str(tmp_path), "split": "train"}, 0, 32, "p")
    assert src.length == 20 and src.class_names[0] == "airplane"
    img, label = src.load(5)
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8 and label == (1 + 1) % 10
    test = open_source({"source": "cifar10", "path": str(tmp_path / "cifar-10-batches-py"), "split": "test"}, 0, 16, "p")
    assert test.length == 4 and test.load(0)[0].shape == (16, 16, 3)
    assert open_source({"source": "cifar10", "path": str(tmp_path), "split": "all"}, 0, 32, "p").length == 24


def test_cifar10_pixel_layout_is_channel_planes(tmp_path):
    d = write_cifar(tmp_path)
    with open(d / "data_batch_1", "rb") as fh:
        raw = pickle.load(fh, encoding="bytes")[b"data"][0]
    img, _ = open_source({"source": "cifar10", "path": str(tmp_path), "split": "train"}, 0, 32, "p").load(0)
    assert img[0, 1, 0] == raw[1] and img[0, 0, 1] == raw[1024] and img[2, 0, 2] == raw[2048 + 64]


def test_cifar10_corrupt_batch_names_the_file(tmp_path):
    d = write_cifar(tmp_path)
    (d / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_3"):
        open_source({"source": "cifar10", "path": str(tmp_path), "split": "train"}, 0, 32, "sample.pools.aae")


def test_coco_directory_of_jpegs_is_unlabelled_and_resized(tmp_path):
    for i in range(3):
        save_image(tmp_path / "val2017" / f"{i:012d}.jpg", size=(40 + 10 * i, 30), seed=i)
    src = open_source({"source": "coco", "path": str(tmp_path / "val2017")}, 0, 16, "p")
    assert src.length == 3 and src.class_names == ()
    img, label = src.load(2)
    assert img.shape == (16, 16, 3) and label == -1


def test_imagefolder_labels_follow_sorted_class_dirs(tmp_path):
    for cls in ("zebra", "apple"):
        for i in range(2):
            save_image(tmp_path / cls / f"{i}.png", seed=i)
    src = open_source({"source": "imagefolder", "path": str(tmp_path)}, 0, 8, "p")
    assert src.class_names == ("apple", "zebra")
    assert [src.load(i)[1] for i in range(4)] == [0, 0, 1, 1]


def test_imagenet_r_requires_wordnet_ids(tmp_path):
    for wnid in ("n01443537", "n01484850"):
        save_image(tmp_path / "imagenet-r" / wnid / "art_0.jpg")
    src = open_source({"source": "imagenet_r", "path": str(tmp_path / "imagenet-r")}, 0, 8, "p")
    assert src.class_names == ("n01443537", "n01484850") and src.load(1)[1] == 1
    save_image(tmp_path / "imagenet-r" / "goldfish" / "x.jpg")
    with pytest.raises(DataError, match="goldfish"):
        open_source({"source": "imagenet_r", "path": str(tmp_path / "imagenet-r")}, 0, 8, "p")


def test_hdf5_source_reads_a_pool_file(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 12, 12, 3), dtype=np.uint8)
    write_pool(tmp_path / "p.h5", images, [0, 1, 2, 0, 1], np.arange(5), {"class_names": ["a", "b", "c"]})
    src = open_source({"source": "hdf5", "path": str(tmp_path / "p.h5")}, 0, 12, "p")
    assert src.class_names == ("a", "b", "c") and src.length == 5
    img, label = src.load(3)
    assert np.array_equal(img, images[3]) and label == 0
    assert src.load(0)[0].shape == (12, 12, 3)
    assert open_source({"source": "hdf5", "path": str(tmp_path / "p.h5")}, 0, 8, "p").load(0)[0].shape == (8, 8, 3)


@pytest.mark.parametrize("source", ["cifar10", "coco", "imagefolder", "imagenet_r", "hdf5"])
def test_missing_path_names_the_parameter(tmp_path, source):
    cfg = {"source": source, "path": str(tmp_path / "nowhere"), "split": "train"}
    with pytest.raises(DataError, match=r"sample\.pools\.test\.path"):
        open_source(cfg, 0, 16, "sample.pools.test")


def _coco_pools(tmp_path, n_good=6):
    for i in range(n_good):
        save_image(tmp_path / "coco" / f"{i:03d}.jpg", seed=i)
    corrupt_image(tmp_path / "coco" / "bad_000.jpg")
    coco = {"source": "coco", "path": str(tmp_path / "coco"), "n": 2}
    builtin = {"source": "builtin", "dataset": "shapes_flat", "n": 3}
    return {"cae": dict(coco), "aae": dict(coco), "test": dict(builtin), "victim": dict(builtin, n=4)}


def test_corrupt_image_is_skipped_and_counted(tmp_path):
    pools = _coco_pools(tmp_path)
    pools["victim"] = dict(pools["cae"])  # the coco source now feeds three pools: 6 good + 1 bad
    metrics = sample.run(cfg=sample.SampleConfig(pools=pools, image_size=16, seed=0, max_bad_fraction=0.5),
                         out_dir=tmp_path / "out", metrics_path=tmp_path / "m.json", workers=2, progress=False)
    assert sum(metrics[p]["n_bad"] for p in ("cae", "aae", "victim")) == 1
    indices = np.concatenate([read_pool(tmp_path / "out" / f"{p}.h5").source_index for p in ("cae", "aae", "victim")])
    assert len(set(indices.tolist())) == 6  # every readable image used exactly once


def test_too_many_corrupt_images_stop_with_their_names(tmp_path):
    pools = _coco_pools(tmp_path, n_good=2)
    pools["aae"]["n"] = 1
    with pytest.raises(DataError, match="max_bad_fraction") as err:
        sample.run(cfg=sample.SampleConfig(pools=pools, image_size=16, seed=0, max_bad_fraction=0.0),
                   out_dir=tmp_path / "out", metrics_path=tmp_path / "m.json", workers=1, progress=False)
    assert "bad_000.jpg" in str(err.value) and "sample.pools." in str(err.value)
    assert not (tmp_path / "out" / "aae.h5").exists()


def test_pool_file_layout(tmp_path):
    images = np.zeros((3, 8, 8, 3), np.uint8)
    digest = write_pool(tmp_path / "p.h5", images, [-1, -1, -1], [5, 7, 9], {"source": "coco", "class_names": []})
    with h5py.File(tmp_path / "p.h5") as f:
        assert f["images"].dtype == np.uint8 and f["images"].shape == (3, 8, 8, 3)
        assert f["labels"].dtype == np.int64 and f.attrs["checksum"] == digest
    pool = read_pool(tmp_path / "p.h5", verify=True)
    assert pool.source_index.tolist() == [5, 7, 9] and not pool.labelled
