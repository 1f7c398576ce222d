"""The real DAG on a tiny configuration, under Snakemake and under `dvc repro`.

Both runners must produce the same files, and both must re-run exactly the stages that
depend on a changed parameter or a changed source file, and nothing else.
"""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest
import yaml

from advrecover import dag
from advrecover.io import sha256_file

TIMINGS = {"wall_time_s"}  # the only content allowed to differ between two runs


def same_output(a, b) -> bool:
    """Byte-identical, or for HDF5 files identical datasets and attributes apart from timings."""
    if a.suffix != ".h5":
        return sha256_file(a) == sha256_file(b)
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        if set(fa) != set(fb) or any(not np.array_equal(fa[k][...], fb[k][...]) for k in fa):
            return False
        attrs_a = {k: v for k, v in fa.attrs.items() if k not in TIMINGS}
        attrs_b = {k: v for k, v in fb.attrs.items() if k not in TIMINGS}
        return attrs_a.keys() == attrs_b.keys() and all(np.array_equal(attrs_a[k], attrs_b[k]) for k in attrs_a)
from helpers import copy_repo, sh, snakemake_jobs, tiny_params

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory):
    """Two fresh copies of the repo with the tiny params: one run by Snakemake, one by DVC."""
    params = tiny_params()
    snake = copy_repo(tmp_path_factory.mktemp("snakemake"), params)
    dvc = copy_repo(tmp_path_factory.mktemp("dvc"), params)
    sh(["snakemake", "--cores", "2"], snake)
    sh(["dvc", "repro"], dvc)
    return snake, dvc


def all_outputs(ws) -> list[str]:
    params = yaml.safe_load((ws / "params.yaml").read_text())
    return [t for stage in dag.load_stages(ws / "dvc.yaml", params) for t in stage.targets]


def dvc_ran(ws) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", sh(["dvc", "repro"], ws).stdout))


def snakemake_ran(ws) -> set[str]:
    """The jobs a real Snakemake run executed, as DVC stage addresses."""
    out = sh(["snakemake", "--cores", "2"], ws)
    return set(snakemake_jobs(out.stdout + out.stderr, ws))


def dependants(ws, stage: str) -> set[str]:
    """``stage`` and every stage downstream of it, from DVC's own graph."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(ws)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        node = next(n for n in graph if n.name == stage)
        return {n.name for n in nx.ancestors(graph, node)} | {stage}


def edit_params(ws, **victim):
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["victim"].update(victim)
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def touch_code(ws, rel: str):
    path = ws / rel
    path.write_text(path.read_text() + "\n# edited by a test\n")


def test_both_runners_produce_the_same_files(workspaces):
    snake, dvc = workspaces
    outputs = all_outputs(snake)
    assert {"models/victim.pt", "data/pools/test.h5", "data/adversarial/test/pgd_8.h5"} <= set(outputs)
    for rel in outputs:
        assert (snake / rel).is_file() and (dvc / rel).is_file(), rel
        assert same_output(snake / rel, dvc / rel), rel


def test_snakemake_wrote_logs_and_benchmarks(workspaces):
    snake, _ = workspaces
    for stage in ("sample", "victim"):
        assert "INFO" in (snake / f"logs/{stage}.log").read_text()
        assert (snake / f"logs/benchmarks/{stage}.tsv").read_text().startswith("s\th:m:s")


def test_nothing_reruns_when_nothing_changed(workspaces):
    snake, dvc = workspaces
    assert dvc_ran(dvc) == set()
    assert snakemake_ran(snake) == set()


def test_victim_param_change_reruns_victim_and_dependants_only(workspaces):
    snake, dvc = workspaces
    expected = dependants(dvc, "victim")
    assert "sample" not in expected
    for ws in workspaces:
        edit_params(ws, epochs=3)
    assert dvc_ran(dvc) == expected
    assert snakemake_ran(snake) == expected


def test_editing_victim_code_reruns_victim_and_dependants_only(workspaces):
    """A real change to the victim's training code (the augmentation's shift range)."""
    snake, dvc = workspaces
    expected = dependants(dvc, "victim")
    for ws in workspaces:
        path = ws / "src/advrecover/stages/victim.py"
        code = path.read_text()
        assert "pad: int = 2" in code
        path.write_text(code.replace("pad: int = 2", "pad: int = 1"))
    assert dvc_ran(dvc) == expected
    assert snakemake_ran(snake) == expected


def test_editing_sample_code_reruns_sample(workspaces):
    """A comment-only edit re-runs ``sample`` under both runners. Its pools come out identical,
    so DVC (which compares content) stops there, while Snakemake (which compares modification
    times) also re-runs everything downstream."""
    snake, dvc = workspaces
    for ws in workspaces:
        touch_code(ws, "src/advrecover/data/builtin.py")
    assert dvc_ran(dvc) == {"sample"}
    assert snakemake_ran(snake) == dependants(dvc, "sample")


def test_editing_unrelated_code_reruns_nothing(workspaces):
    snake, dvc = workspaces
    for ws in workspaces:
        touch_code(ws, "src/advrecover/params.py")
    assert dvc_ran(dvc) == set()
    assert snakemake_ran(snake) == set()


def test_runners_still_agree_after_the_reruns(workspaces):
    snake, dvc = workspaces
    for rel in all_outputs(snake):
        assert same_output(snake / rel, dvc / rel), rel
