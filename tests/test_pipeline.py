"""The real DAG on a tiny configuration, under Snakemake and under `dvc repro`.

Both runners must produce the same files, and both must re-run exactly the stages that
depend on a changed parameter or a changed source file, and nothing else. (The same DAG runs
feed test_results.py, test_sharing.py and test_slurm.py; the workspaces fixture is conftest's.)
"""

from __future__ import annotations

import pytest
import yaml
from dvc.repo import Repo

from helpers import all_outputs, both_ran, dependants, dvc_ran, same_output, sh, snakemake_jobs, \
    snakemake_plans_nothing, tiny_params

pytestmark = pytest.mark.slow


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
    assert both_ran(snake, dvc) == (set(), set())


def evaluation_jobs() -> set[str]:
    """Every defence's evaluate job, adaptive shards and adaptive merge in the tiny DAG."""
    p = tiny_params()
    return {job for d in p["evaluate"]["defences"] for job in (
        f"evaluate@{d}", f"adaptive_merge@{d}", *(f"adaptive@{d}-{k}" for k in p["adaptive"]["shards"]))}


def test_aae_param_change_reruns_the_aaes_and_dependants_only(workspaces):
    snake, dvc = workspaces
    with Repo(str(dvc)) as repo:
        aaes = [s.name for s in repo.index.stages if s.name.startswith("train_aae")]
    expected = set().union(*(dependants(dvc, a) for a in aaes))
    evaluation = evaluation_jobs()
    assert expected == set(aaes) | evaluation | {"tables", "report"}
    for ws in workspaces:
        params = yaml.safe_load((ws / "params.yaml").read_text())
        params["recovery"]["aae"]["default"]["epochs"] += 1
        (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert both_ran(snake, dvc) == (expected, expected)


def test_editing_evaluation_code_reruns_evaluate_only(workspaces):
    """A real change to the metrics code (the PSNR reported for identical images): every defence's
    evaluate and adaptive job (the adaptive stage takes its intervals and paired tests from the same
    module), the tables and the report."""
    snake, dvc = workspaces
    for ws in workspaces:
        path = ws / "src/advrecover/metrics.py"
        code = path.read_text()
        assert "PSNR_CAP = 100.0" in code
        path.write_text(code.replace("PSNR_CAP = 100.0", "PSNR_CAP = 99.0"))
    expected = evaluation_jobs() | {"tables", "report"}
    assert both_ran(snake, dvc) == (expected, expected)


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
    assert both_ran(snake, dvc) == (set(), set())


def test_editing_the_plugin_reruns_exactly_its_jobs(workspaces):
    """The example plugin's defence module lives outside src/advrecover (each workspace imports its own
    copy, helpers.run_env): a comment-only edit re-runs its evaluate and adaptive jobs and no other
    defence's, under both runners. The report, which draws every defence, depends on every defence's
    stamp; the tables are re-assembled after them (Snakemake: newer inputs; DVC: the adaptive rows
    carry their timing, which a re-run changes)."""
    snake, dvc = workspaces
    for ws in workspaces:
        touch_code(ws, "examples/plugin/src/advrecover_example/bitdepth.py")
    ours = {"evaluate@bit_depth", "adaptive_merge@bit_depth",
            *(f"adaptive@bit_depth-{k}" for k in tiny_params()["adaptive"]["shards"])}
    assert ours < evaluation_jobs()
    by_snakemake, by_dvc = both_ran(snake, dvc)
    assert by_snakemake == ours | {"tables", "report"}
    assert ours | {"report"} <= by_dvc <= ours | {"tables", "report"}


def test_editing_the_module_victim_reruns_everything_downstream(workspaces):
    """The classifier of ``victim.mode: module`` is outside src/advrecover too: a comment-only edit
    of its module re-runs the victim stage, whose output then records the new code (DVC compares
    content), and so everything that reads the victim. Checked as a plan (Snakemake's dry run, DVC's
    status) and undone: a real run would repeat the whole DAG."""
    import os

    snake, dvc = workspaces
    rel = "examples/plugin/src/advrecover_example/classifier.py"
    saved = {ws: ((ws / rel).read_text(), (ws / rel).stat()) for ws in workspaces}
    stamp = "data/plugins/victim.json"
    stamp_time = (snake / stamp).stat()
    for ws in workspaces:
        touch_code(ws, rel)
    planned = sh(["snakemake", "-n"], snake)
    assert set(snakemake_jobs(planned.stdout + planned.stderr, snake)) == dependants(dvc, "victim")
    sh(["dvc", "repro", "--single-item", "plugins"], dvc)
    assert "victim:" in sh(["dvc", "status", "victim"], dvc).stdout
    for ws, (text, stat) in saved.items():
        (ws / rel).write_text(text)
        os.utime(ws / rel, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    sh(["advrecover", "plugins", "--out", "data/plugins"], snake)  # the stamp's content back, then its time
    os.utime(snake / stamp, ns=(stamp_time.st_atime_ns, stamp_time.st_mtime_ns))
    assert snakemake_plans_nothing(snake) and dvc_ran(dvc) == set()


def test_runners_still_agree_after_the_reruns(workspaces):
    snake, dvc = workspaces
    for rel in all_outputs(snake):
        assert same_output(snake / rel, dvc / rel), rel
