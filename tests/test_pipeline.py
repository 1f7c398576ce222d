"""The real DAG on a tiny configuration, under Snakemake and under `dvc repro`.

Both runners must produce the same files, and both must re-run exactly the stages that
depend on a changed parameter or a changed source file, and nothing else.
"""

from __future__ import annotations

import re

import pytest
import yaml
from dvc.repo import Repo

from advrecover import dag
from helpers import BIN, REPO, copy_repo, same_output, sh, snakemake_jobs, tiny_params

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
    """Every output of every stage instance (outs, metrics and plots) as DVC itself reads dvc.yaml;
    the Snakemake translation (``advrecover.dag``) must name the same files."""
    params = yaml.safe_load((ws / "params.yaml").read_text())
    ours = sorted(t for stage in dag.load_stages(ws / "dvc.yaml", params) for t in stage.targets)
    with Repo(str(ws)) as repo:
        theirs = sorted(o.def_path for stage in repo.index.stages for o in stage.outs)
    assert ours == theirs
    return theirs


def dvc_ran(ws) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", sh(["dvc", "repro"], ws).stdout))


def snakemake_ran(ws) -> set[str]:
    """The jobs a real Snakemake run executed, as DVC stage addresses."""
    out = sh(["snakemake", "--cores", "2"], ws)
    return set(snakemake_jobs(out.stdout + out.stderr, ws))


def dependants(ws, stage: str) -> set[str]:
    """``stage`` and every stage downstream of it, from DVC's own graph."""
    import networkx as nx

    with Repo(str(ws)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        node = next(n for n in graph if n.name == stage)
        return {n.name for n in nx.ancestors(graph, node)} | {stage}


def touch_code(ws, rel: str):
    path = ws / rel
    path.write_text(path.read_text() + "\n# edited by a test\n")


def test_both_runners_produce_the_same_files(workspaces):
    """Every output file of dvc.yaml, byte for byte (HDF5: every dataset and attribute but the
    timings of helpers.TIMINGS)."""
    snake, dvc = workspaces
    outputs = all_outputs(snake)
    assert {"models/victim.pt", "data/pools/test.h5", "data/adversarial/test/pgd_8.h5", "results/seen.md",
            "metrics/victim_train.csv"} <= set(outputs)
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


def make(target: str, ws):
    """A Makefile target in a workspace, with this test run's environment (no reinstall)."""
    return sh(["make", "-o", "install", "-o", f"{BIN.parent}/.installed", target, f"VENV={BIN.parent}"], ws)


def snakemake_plans_nothing(ws) -> bool:
    out = sh(["snakemake", "-n"], ws)
    return "Nothing to be done" in out.stdout + out.stderr


def test_handoff_after_snakemake_makes_dvc_agree(workspaces):
    """`make handoff` records a Snakemake run in dvc.lock: DVC then has nothing to do either."""
    snake, _ = workspaces
    assert not (snake / "dvc.lock").exists()
    make("handoff", snake)
    assert "up to date" in sh(["dvc", "status"], snake).stdout
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
    assert "up to date" in sh(["dvc", "status"], b).stdout
    assert dvc_ran(b) == set()
    assert snakemake_plans_nothing(b)
    for rel in all_outputs(a):
        assert same_output(a / rel, b / rel), rel


def test_dvc_exp_run_with_set_params_shows_in_metrics_diff(shared):
    """An attack parameter and a training parameter changed with `dvc exp run -S`."""
    import json

    _, b, _ = shared
    sh(["dvc", "exp", "run", "-S", "attack.instances.pgd_8.eps=0.1", "-S", "recovery.aae.default.epochs=3"], b)
    diff = json.loads(sh(["dvc", "metrics", "diff", "--json"], b).stdout)
    attack = diff["metrics/attack/test/pgd_8.json"]
    assert attack["mean_linf"]["new"] > attack["mean_linf"]["old"]
    trained = diff["metrics/train/aae/default/pgd_8.json"]["psnr_recovery_to_input"]
    assert trained["new"] != trained["old"]
    params = json.loads(sh(["dvc", "params", "diff", "--json"], b).stdout)["params.yaml"]
    assert params["recovery.aae.default.epochs"]["new"] == 3


def slurm_up(tmp) -> str | None:
    """Start the one-node SLURM of tests/slurm (root, Debian packages); the reason when it cannot."""
    import os
    import shutil
    import subprocess

    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "needs root and apt-get to install SLURM"
    env = {**os.environ, "PIDDIR": str(tmp / "pids")}
    res = subprocess.run(["bash", str(REPO / "tests/slurm/up.sh")], env=env, capture_output=True, text=True,
                         timeout=600)
    return None if res.returncode == 0 else f"SLURM did not start: {(res.stdout + res.stderr)[-600:]}"


def slurm_overrides() -> list[str]:
    """The profile's per-stage resources shrunk to this 2-CPU node, GPU requests kept as they are."""
    profile = yaml.safe_load((REPO / "slurm/config.yaml").read_text())
    resources = []
    for rule, res in profile["set-resources"].items():
        res = {**res, "mem_mb": 2000, "runtime": 30, "cpus_per_task": 2}
        resources += [f"{rule}:{k}={v}" for k, v in res.items()]
    return ["--set-resources", *resources, "--default-resources", "mem_mb=2000", "runtime=30", "cpus_per_task=2",
            "--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs"]


@pytest.mark.slow
def test_snakemake_profile_slurm_runs_every_job_through_sbatch(workspaces, tmp_path):
    """The tiny DAG with `snakemake --profile slurm` on a real one-node SLURM with a fake GPU."""
    import subprocess

    snake, _ = workspaces
    reason = slurm_up(tmp_path)
    if reason:
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    try:
        ws = copy_repo(tmp_path / "ws", yaml.safe_load((snake / "params.yaml").read_text()))
        cmd = ["timeout", "-k", "30", "900", "snakemake", "--profile", "slurm", "--verbose", *slurm_overrides()]
        out = sh(cmd, ws, timeout=960)
        text = out.stdout + out.stderr
    finally:
        subprocess.run(["bash", str(REPO / "tests/slurm/down.sh")], env={"PIDDIR": str(tmp_path / "pids"),
                                                                         "PATH": "/usr/bin:/bin"})
    jobs = snakemake_jobs(text, ws)
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", text)
    assert len(set(submitted)) == len(jobs) > 0, "every job is its own sbatch submission, with its SLURM job id"
    gpu_rules = {r for r, res in yaml.safe_load((REPO / "slurm/config.yaml").read_text())["set-resources"].items()
                 if res.get("gpu")}
    calls = [line for line in text.splitlines() if "sbatch call:" in line]
    assert len(calls) == len(jobs)
    for call in calls:
        comment = re.search(r"--comment\s+(\S+)", call).group(1).strip("'\"")
        rule = comment.removeprefix("rule_").split("_wildcards_")[0]
        assert ("--gpus=1" in call) == (rule in gpu_rules), call
    assert {"victim", "attack", "train_cae", "train_aae", "evaluate"} <= gpu_rules
    for rel in all_outputs(snake):
        assert same_output(snake / rel, ws / rel), rel


def test_aae_param_change_reruns_the_aaes_and_dependants_only(workspaces):
    snake, dvc = workspaces
    with Repo(str(dvc)) as repo:
        aaes = [s.name for s in repo.index.stages if s.name.startswith("train_aae")]
    expected = set().union(*(dependants(dvc, a) for a in aaes))
    assert expected == set(aaes) | {"evaluate"}
    for ws in workspaces:
        params = yaml.safe_load((ws / "params.yaml").read_text())
        params["recovery"]["aae"]["default"]["epochs"] += 1
        (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert dvc_ran(dvc) == expected
    assert snakemake_ran(snake) == expected


def test_editing_evaluation_code_reruns_evaluate_only(workspaces):
    """A real change to the metrics code (the PSNR reported for identical images)."""
    snake, dvc = workspaces
    for ws in workspaces:
        path = ws / "src/advrecover/metrics.py"
        code = path.read_text()
        assert "PSNR_CAP = 100.0" in code
        path.write_text(code.replace("PSNR_CAP = 100.0", "PSNR_CAP = 99.0"))
    assert dvc_ran(dvc) == {"evaluate"}
    assert snakemake_ran(snake) == {"evaluate"}


def test_editing_sample_code_reruns_sample(workspaces):
    """A comment-only edit re-runs ``sample`` under both runners. Its pools come out identical,
    so DVC (which compares content) stops there, while Snakemake (which compares modification
    times) plans everything downstream as well. Snakemake's plan is checked with a dry run and
    the edit then undone there, content and modification time (a real run would repeat the
    whole DAG and prove nothing more)."""
    import os

    snake, dvc = workspaces
    rel = "src/advrecover/data/builtin.py"
    original, stat = (snake / rel).read_text(), (snake / rel).stat()
    for ws in workspaces:
        touch_code(ws, rel)
    assert dvc_ran(dvc) == {"sample"}
    planned = sh(["snakemake", "-n"], snake)
    assert set(snakemake_jobs(planned.stdout + planned.stderr, snake)) == dependants(dvc, "sample")
    (snake / rel).write_text(original)
    os.utime(snake / rel, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert snakemake_plans_nothing(snake)


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


def test_evaluation_tables_and_the_no_defence_row(workspaces):
    """The tables exist in 001's shape, and the identity defence reproduces the attack sets' own figures."""
    import json

    import pandas as pd

    from advrecover.data.adversarial import read_adversarial

    _, ws = workspaces
    for protocol in ("seen", "unseen"):
        text = (ws / f"results/{protocol}.md").read_text()
        assert "| defence" in text and "Clean" in text and "Average" in text
        frame = pd.read_csv(ws / f"results/{protocol}.csv")
        assert {"accuracy", "recovery_rate", "recovery_ratio", "psnr", "ssim", "psnr_to_input"} <= set(frame.columns)
        rows = {"none", "cae_aae"} | ({"cae_aae (mixed)"} if protocol == "seen" else set())
        assert set(frame["defence"]) == rows
        assert set(frame["column"]) == {"clean", "fgsm", "pgd_8"}
    unseen = pd.read_csv(ws / "results/unseen.csv")
    cells = unseen[(unseen["defence"] == "cae_aae") & (unseen["column"] != "clean")]
    assert (cells["train_set"] != cells["column"]).all()
    accuracy = json.loads((ws / "metrics/evaluate.json").read_text())["accuracy"]
    s = read_adversarial(ws / "data/adversarial/test/pgd_8.h5")
    assert accuracy["seen"]["none"]["pgd_8"] == pytest.approx((s.pred_adv == s.label).mean(), abs=1e-6)
    victim = json.loads((ws / "metrics/victim.json").read_text())["accuracy"]["test"]
    assert accuracy["seen"]["none"]["clean"] == pytest.approx(victim, abs=1e-6)


def test_ablation_writes_one_row_per_setting(workspaces, tmp_path):
    """`make ablation-*` in small: queued DVC experiments over a grid, collected one row each."""
    _, ws = workspaces
    sh(["dvc", "exp", "run", "--queue", "-S", "recovery.cae.default.lambda1=choice(0.001,0.1)"], ws)
    sh(["dvc", "exp", "run", "--run-all"], ws, timeout=900)
    out = tmp_path / "ablation.csv"
    sh(["python", "-m", "advrecover.ablation", str(out), "recovery.cae.default.lambda1"], ws)
    import pandas as pd

    table = pd.read_csv(out)
    assert sorted(table["recovery.cae.default.lambda1"]) == [0.001, 0.1]
    assert "seen.cae_aae.average" in table.columns and table["seen.cae_aae.average"].between(0, 1).all()
