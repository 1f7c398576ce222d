"""Crash safety: a half-written output never appears under its final name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import yaml

from advrecover.data.pools import read_pool, write_pool
from advrecover.io import atomic_path, write_json
from helpers import REPO, run_env


def test_atomic_path_publishes_only_complete_files(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists() and list((tmp_path / "sub").iterdir()) == []
    write_json(target, {"b": 1, "a": 2})
    assert target.read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'


def test_failure_inside_hdf5_writing_leaves_no_pool(tmp_path, monkeypatch):
    original = h5py.Group.create_dataset

    def failing(self, name, *args, **kwargs):
        if name == "labels":
            raise OSError("disk full")
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing)
    with pytest.raises(OSError, match="disk full"):
        write_pool(tmp_path / "p.h5", np.zeros((2, 4, 4, 3), np.uint8), [0, 1], [0, 1], {})
    assert list(tmp_path.iterdir()) == []


def test_sigkilled_sample_stage_leaves_only_complete_pools(tmp_path, params):
    params["sample"]["pools"]["victim"]["n"] = 20000  # long enough to be killed mid-way
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "pools"
    proc = subprocess.Popen([sys.executable, "-m", "advrecover", "sample", "--params", "params.yaml",
                             "--out", str(out), "--metrics", str(tmp_path / "m.json"), "--quiet", "--workers", "1"],
                            cwd=tmp_path, env=run_env(REPO), stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while not (out / "test.h5").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job, decoding workers included, as a scheduler kills it
    proc.wait()
    finished = sorted(p.name for p in out.glob("*.h5"))
    assert finished == ["aae.h5", "cae.h5", "test.h5"]  # victim.h5 was still being drawn
    for name in finished:
        read_pool(out / name, verify=True)
    assert not (tmp_path / "m.json").exists()


def test_a_gzipped_csv_has_the_same_bytes_whatever_its_path(tmp_path):
    """Two runners write per-image records to different temporary names: the bytes must not differ."""
    import gzip

    import pandas as pd

    from advrecover.io import write_csv_gz

    frame = pd.DataFrame({"image": [1, 2], "correct": [True, False], "norm": [0.5, 1 / 3]})
    write_csv_gz(tmp_path / "a.csv.gz", frame)
    (tmp_path / "sub").mkdir()
    write_csv_gz(tmp_path / "sub" / "b.csv.gz", frame)
    assert (tmp_path / "a.csv.gz").read_bytes() == (tmp_path / "sub" / "b.csv.gz").read_bytes()
    assert pd.read_csv(tmp_path / "a.csv.gz").equals(pd.read_csv(gzip.open(tmp_path / "sub" / "b.csv.gz")))
