"""Stages ``attack`` and ``attack_merge``: the HDF5 set, determinism, sharding, crash safety, provenance."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import hdf5plugin
import numpy as np
import pytest
import torch
import yaml

from advrecover.data import adversarial as adv_format
from advrecover.data.pools import read_pool
from advrecover.data.tensors import to_tensor
from advrecover.io import sha256_file
from advrecover.models import victim as victims
from advrecover.config import section
from advrecover.stages import attack, attack_merge, sample, victim
from helpers import REPO, run_env

PGD = {"method": "pgd", "eps": 8 / 255, "alpha": 2 / 255, "steps": 3}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tiny pools and a tiny victim (the real stage functions), shared by this module."""
    from helpers import tiny_params

    root = tmp_path_factory.mktemp("attack")
    p = tiny_params()
    s = p["sample"]
    sample.run(cfg=sample.SampleConfig(pools=s["pools"], image_size=s["image_size"], seed=0, max_bad_fraction=0.0),
               out_dir=root / "pools", metrics_path=root / "s.json", progress=False)
    victim.run(cfg=section(victims.VictimConfig, p["victim"]), seed=0, device=torch.device("cpu"), pools_dir=root / "pools",
               model_path=root / "victim.pt", metrics_path=root / "v.json", history_path=root / "h.csv", progress=False)
    return root, p


def generate(trained, out, spec=PGD, shard=0, n_shards=1, dtype="float32", batch_size=8, pool="test",
             use_labels=True):
    root, p = trained
    return attack.run(name="pgd", spec=spec, pool_name=pool, pool_path=root / "pools" / f"{pool}.h5",
                      victim_path=root / "victim.pt", victim_cfg=section(victims.VictimConfig, p["victim"]), shard=shard, n_shards=n_shards,
                      batch_size=batch_size, dtype=dtype, seed=0, device=torch.device("cpu"), out_path=out,
                      use_labels=use_labels, progress=False)


def datasets(path) -> dict:
    with h5py.File(path, "r") as f:
        return {k: f[k][...] for k in ("images", *adv_format.COLUMNS)}


def same_data(a, b) -> bool:
    da, db = datasets(a), datasets(b)
    return all(np.array_equal(da[k], db[k]) for k in da)


def test_set_schema_and_attributes(trained, tmp_path):
    root, p = trained
    out = tmp_path / "test" / "pgd.h5"
    generate(trained, out)
    pool = read_pool(root / "pools" / "test.h5")
    with h5py.File(out, "r") as f:
        n = len(pool.images)
        assert f["images"].shape == (n, 16, 16, 3) and f["images"].dtype == np.float32
        assert f["images"].id.get_create_plist().get_filter(0)[0] == hdf5plugin.BLOSC_ID and f["images"].chunks[0] == 8
        for name, dtype in adv_format.COLUMNS.items():
            assert f[name].shape == (n,) and f[name].dtype == dtype
        attrs = dict(f.attrs)
    assert attrs["attack"] == "pgd" and attrs["method"] == "pgd" and json.loads(attrs["params"])["steps"] == 3
    assert attrs["pool_checksum"] == pool.attrs["checksum"]
    assert attrs["victim_checksum"] == sha256_file(root / "victim.pt")
    assert attrs["seed"] == 0 and attrs["wall_time_s"] > 0 and "torchattacks" in json.loads(attrs["versions"])
    s = adv_format.read_adversarial(out)
    clean = pool.images.astype(np.float32) / 255
    assert np.array_equal(s.pool_index, np.arange(n)) and np.array_equal(s.label, pool.labels)
    assert np.allclose(s.linf, np.abs(s.float_images - clean).reshape(n, -1).max(1), atol=1e-6)
    assert (s.linf <= 8 / 255 + 1e-6).all()
    assert np.array_equal(s.success, s.pred_adv != s.label)


@pytest.mark.parametrize("spec", [{"method": "fgsm", "eps": 8 / 255}, PGD], ids=["fgsm", "pgd"])
def test_recorded_predictions_are_the_victims(trained, tmp_path, monkeypatch, spec):
    """pred_clean and pred_adv equal the victim's own predictions whether the clean logits are
    read off the attack (FGSM starts on the clean images) or computed (PGD starts at random),
    and FGSM pays two forward passes per batch: its gradient step and the stored images."""
    root, p = trained
    calls = []
    load = victims.load

    def counting_load(*args):
        model = load(*args)
        model.register_forward_hook(lambda *_: calls.append(1))
        return model

    monkeypatch.setattr(victims, "load", counting_load)
    out = tmp_path / "set.h5"
    generate(trained, out, spec=spec)
    s = adv_format.read_adversarial(out)
    model = load(root / "victim.pt", section(victims.VictimConfig, p["victim"]))
    with torch.no_grad():
        clean = model(to_tensor(read_pool(root / "pools" / "test.h5").images)).argmax(1).numpy()
        adv = model(torch.from_numpy(s.float_images).permute(0, 3, 1, 2)).argmax(1).numpy()
    assert np.array_equal(s.pred_clean, clean) and np.array_equal(s.pred_adv, adv)
    if spec["method"] == "fgsm":
        assert len(calls) == 2 * -(-len(s.label) // 8)


def test_a_pool_outside_the_victims_label_space_is_attacked_away_from_its_prediction(trained, tmp_path):
    """``use_labels=False`` (a pool not in attack.label_pools, e.g. CIFAR-10 against an ImageNet
    victim): the target is the victim's clean prediction, whatever the pool's labels say."""
    root, p = trained
    generate(trained, tmp_path / "labels.h5")
    generate(trained, tmp_path / "predictions.h5", use_labels=False)
    by_label = adv_format.read_adversarial(tmp_path / "labels.h5")
    by_prediction = adv_format.read_adversarial(tmp_path / "predictions.h5")
    assert by_label.attrs["target"] == "label" and by_prediction.attrs["target"] == "prediction"
    assert np.array_equal(by_prediction.label, by_label.label)  # the pool's labels are still recorded
    assert np.array_equal(by_prediction.success, by_prediction.pred_adv != by_prediction.pred_clean)
    wrong = by_label.pred_clean != by_label.label  # images the victim gets wrong: the two targets differ
    assert wrong.any() and not np.array_equal(by_prediction.images[wrong], by_label.images[wrong])


def test_same_seed_same_data(trained, tmp_path):
    generate(trained, tmp_path / "a.h5")
    generate(trained, tmp_path / "b.h5")
    assert same_data(tmp_path / "a.h5", tmp_path / "b.h5")


@pytest.mark.parametrize("dtype, tolerance", [("float16", 1e-3), ("uint8", 0.5 / 255 + 1e-6)])
def test_quantised_storage(trained, tmp_path, dtype, tolerance):
    generate(trained, tmp_path / "f32.h5")
    generate(trained, tmp_path / "q.h5", dtype=dtype)
    exact, quant = adv_format.read_adversarial(tmp_path / "f32.h5"), adv_format.read_adversarial(tmp_path / "q.h5")
    assert quant.images.dtype == np.dtype(dtype)
    assert np.abs(quant.float_images - exact.float_images).max() <= tolerance


def test_merged_shards_equal_the_unsharded_set(trained, tmp_path):
    generate(trained, tmp_path / "one" / "shard-0.h5")
    shards = [tmp_path / "three" / f"shard-{k}.h5" for k in range(3)]
    for k, path in enumerate(shards):
        generate(trained, path, shard=k, n_shards=3)
    m1 = attack_merge.run(shard_paths=[tmp_path / "one" / "shard-0.h5"], out_path=tmp_path / "one.h5",
                          metrics_path=tmp_path / "one.json")
    m3 = attack_merge.run(shard_paths=shards, out_path=tmp_path / "three.h5", metrics_path=tmp_path / "three.json")
    assert same_data(tmp_path / "one.h5", tmp_path / "three.h5")
    a1, a3 = adv_format.read_attrs(tmp_path / "one.h5"), adv_format.read_attrs(tmp_path / "three.h5")
    differing = {k for k in set(a1) | set(a3) if a1.get(k) != a3.get(k)}
    assert differing <= {"n_shards", "wall_time_s"}
    assert m1 == m3 and m1["n"] == 40


def test_merge_refuses_shards_of_different_sets(trained, tmp_path):
    generate(trained, tmp_path / "shard-0.h5", shard=0, n_shards=2)
    generate(trained, tmp_path / "shard-1.h5", spec=dict(PGD, steps=2), shard=1, n_shards=2)
    with pytest.raises(ValueError, match="params"):
        attack_merge.run(shard_paths=[tmp_path / "shard-0.h5", tmp_path / "shard-1.h5"], out_path=tmp_path / "m.h5",
                         metrics_path=tmp_path / "m.json")
    assert not (tmp_path / "m.h5").exists()


def test_reader_refuses_a_set_made_against_another_victim_or_pool(trained, tmp_path):
    root, _ = trained
    generate(trained, tmp_path / "pgd.h5")
    pool_sum = read_pool(root / "pools" / "test.h5").attrs["checksum"]
    victim_sum = sha256_file(root / "victim.pt")
    adv_format.read_adversarial(tmp_path / "pgd.h5", victim_sum, pool_sum)
    with pytest.raises(adv_format.ChecksumMismatch, match="different victim"):
        adv_format.read_adversarial(tmp_path / "pgd.h5", "0" * 64, pool_sum)
    with pytest.raises(adv_format.ChecksumMismatch, match="different pool"):
        adv_format.read_adversarial(tmp_path / "pgd.h5", victim_sum, "f" * 64)


def test_sigkilled_attack_leaves_nothing_complete_and_resumes_to_the_same_data(trained, tmp_path):
    root, p = trained
    p = json.loads(json.dumps(p))
    p["attack"].update(batch_size=4, shards=[0])
    p["attack"]["instances"]["slow"] = {"method": "pgd", "eps": 8 / 255, "alpha": 1 / 255, "steps": 60}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    out, log = tmp_path / "out" / "slow.h5", tmp_path / "attack.log"
    cmd = [sys.executable, "-m", "advrecover", "attack", "--params", "params.yaml", "--pool", "test", "--attack",
           "slow", "--shard", "0", "--pools", str(root / "pools"), "--victim", str(root / "victim.pt"),
           "--out", str(out), "--log", str(log), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=run_env(REPO), stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and "batch 3/" in log.read_text()):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists() and out.with_name("slow.h5.partial").exists()
    subprocess.run(cmd, cwd=tmp_path, env=run_env(REPO), check=True, stderr=subprocess.DEVNULL)
    assert out.exists() and not out.with_name("slow.h5.partial").exists()
    assert "resuming" in log.read_text()
    reference = tmp_path / "reference.h5"
    attack.run(name="slow", spec=p["attack"]["instances"]["slow"], pool_name="test", pool_path=root / "pools" / "test.h5",
               victim_path=root / "victim.pt", victim_cfg=section(victims.VictimConfig, p["victim"]), shard=0, n_shards=1, batch_size=4,
               dtype="float32", seed=p["seed"], device=torch.device("cpu"), out_path=reference, progress=False)
    assert same_data(out, reference)
