"""The adaptive stage sharded over its images, under Snakemake and under `dvc repro`: two shards and
their merge write the rows, records and summaries of the unsharded run that built the tiny DAG."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
import yaml

from helpers import same_output, sh

pytestmark = pytest.mark.slow


def outputs(defence: str) -> list[str]:
    return [f"results/adaptive/{defence}.csv", f"results/adaptive/{defence}.images.csv.gz",
            f"results/adaptive/{defence}.json", f"metrics/adaptive/{defence}.json"]


def test_two_shards_merge_to_the_bytes_of_one(workspaces, tmp_path):
    defences = ["none"]  # one defence: sharding and merging are the same code for every defence
    snake, dvc = workspaces
    reference = tmp_path / "unsharded"
    for rel in (r for d in defences for r in outputs(d)):
        (reference / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(snake / rel, reference / rel)
    for ws in workspaces:
        params = yaml.safe_load((ws / "params.yaml").read_text())
        params["adaptive"]["shards"] = [0, 1]
        (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(sh, ["snakemake", "--cores", "1", *(o for d in defences for o in outputs(d))], snake),
                pool.submit(sh, ["dvc", "repro", *(f"adaptive_merge@{d}" for d in defences)], dvc)]
        ran = [r.result() for r in runs]
    assert "adaptive@none-1" in ran[1].stdout or "adaptive@none-1" in ran[1].stderr
    for ws in workspaces:
        for d in defences:
            shards = [pd.read_csv(ws / f"data/adaptive/{d}/shard-{k}.csv.gz") for k in (0, 1)]
            assert all(0 < s["image"].nunique() < 16 for s in shards)  # each shard attacked part of the images
            assert set(shards[0]["image"]).isdisjoint(shards[1]["image"])
            for rel in outputs(d):
                assert same_output(reference / rel, ws / rel), (ws.parent.name, rel)
