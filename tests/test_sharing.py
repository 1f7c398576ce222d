"""Sharing a finished DAG: the hand-off from Snakemake to DVC, push to a remote and pull into a
fresh clone, experiments with `dvc exp run -S`, and a queued ablation grid."""

from __future__ import annotations

import pytest

from helpers import all_outputs, dvc_ran, dvc_up_to_date, make, same_output, sh, snakemake_plans_nothing

pytestmark = pytest.mark.slow


def test_handoff_after_snakemake_makes_dvc_agree(workspaces):
    """`make handoff` records a Snakemake run in dvc.lock: DVC then has nothing to do either."""
    snake, _ = workspaces
    assert not (snake / "dvc.lock").exists()
    make("handoff", snake)
    assert dvc_up_to_date(snake)
    assert dvc_ran(snake) == set()
    assert snakemake_plans_nothing(snake)


@pytest.fixture(scope="module")
def shared(workspaces, tmp_path_factory):
    """Clone A (the DVC workspace) pushes to a local-directory remote; clone B is a fresh git clone that pulls."""
    _, a = workspaces
    remote = tmp_path_factory.mktemp("remote")
    sh(["dvc", "remote", "add", "-d", "shared", str(remote)], a)
    sh(["dvc", "push"], a)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    sh(["git", "add", "-A"], a)
    sh([*git, "commit", "-qm", "results"], a)
    b = tmp_path_factory.mktemp("clone") / "b"
    sh(["git", "clone", "-q", str(a), str(b)], a)
    make("pull", b)
    return a, b, remote


def test_push_then_pull_recomputes_nothing(shared):
    a, b, remote = shared
    assert any(remote.rglob("*")), "the remote holds the cached outputs"
    assert dvc_up_to_date(b)
    assert dvc_ran(b) == set()
    assert snakemake_plans_nothing(b)
    for rel in all_outputs(a):
        assert same_output(a / rel, b / rel), rel


def test_dvc_exp_run_with_set_params_shows_in_metrics_diff(shared):
    """An attack parameter and a training parameter changed with `dvc exp run -S`, the experiment
    run up to the two stages whose metrics are compared (with their changed ancestors: the pgd_8
    attacks and merges; what lies downstream is the aae-change test's of test_pipeline.py)."""
    import json

    _, b, _ = shared
    sh(["dvc", "exp", "run", "-S", "attack.instances.pgd_8.eps=0.1", "-S", "recovery.aae.default.epochs=3",
        "attack_merge@test-pgd_8", "train_aae@default-pgd_8"], b)
    diff = json.loads(sh(["dvc", "metrics", "diff", "--json"], b).stdout)
    attack = diff["metrics/attack/test/pgd_8.json"]
    assert attack["mean_linf"]["new"] > attack["mean_linf"]["old"]
    trained = diff["metrics/train/aae/default/pgd_8.json"]["psnr_recovery_to_input"]
    assert trained["new"] != trained["old"]
    params = json.loads(sh(["dvc", "params", "diff", "--json"], b).stdout)["params.yaml"]
    assert params["recovery.aae.default.epochs"]["new"] == 3


def test_ablation_writes_one_row_per_setting(workspaces, tmp_path):
    """`make ablation-*` in small: queued DVC experiments over a grid, each re-running the target
    evaluate@cae_aae, two at a time, collected one row each (the grid is over evaluate.tau, which
    re-runs only that stage: the mechanics are those of the lambda1 and depth grids, at a fraction
    of their cost)."""
    _, ws = workspaces
    sh(["dvc", "exp", "run", "--queue", "evaluate@cae_aae", "-S", "evaluate.tau=choice(0.02,0.04)"], ws)
    sh(["dvc", "exp", "run", "--run-all", "--jobs", "2"], ws, timeout=900)
    out = tmp_path / "ablation.csv"
    sh(["python", "-m", "advrecover.ablation", str(out), "evaluate.tau"], ws)
    import pandas as pd

    table = pd.read_csv(out)
    assert sorted(table["evaluate.tau"]) == [0.02, 0.04]
    assert "seen.cae_aae.average" in table.columns and table["seen.cae_aae.average"].between(0, 1).all()
