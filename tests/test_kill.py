"""Kill anything: every stage of dvc.yaml, SIGKILLed at seeded random moments and re-run.

The stages are read from dvc.yaml (one instance per matrix stage), so a stage added later is
covered without editing this file. The tiny DAG as Snakemake left it gives the reference bytes and
each job's uninterrupted duration (its benchmark file). Then the stage's outputs are removed and,
KILLS times in a row (each run starting from what the killed one left), its command is started in
its own process group and the whole group SIGKILLed (as a scheduler does) at a moment drawn between
the end of its imports and that duration. After each kill, every output that exists must be the
complete reference (nothing complete-looking but partial); after one plain re-run, every output
must equal the reference, apart from the timings of helpers.TIMINGS.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import pytest
import yaml

from advrecover import dag
from helpers import SUMMARY, run_env, same_output, tiny_dag

pytestmark = pytest.mark.slow
KILLS = 2  # per stage


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The tiny DAG, complete, as Snakemake left it (with its jobs' benchmark files)."""
    return tiny_dag(tmp_path_factory, "snakemake")


def instances(ws) -> list[tuple[str, str, list[str], float]]:
    """(stage address, command, outputs, seconds Snakemake's run took) of each dvc.yaml stage's
    first instance, in file order."""
    params = yaml.safe_load((ws / "params.yaml").read_text())
    out = []
    for stage in dag.load_stages(ws / "dvc.yaml", params):
        values = {k: v[0] for k, v in stage.wildcards.items()}
        address = stage.name + ("@" + "-".join(values.values()) if values else "")
        benchmark = ws / "logs/benchmarks" / (stage.name + ("/" + "-".join(values.values()) if values else "") + ".tsv")
        seconds = float(benchmark.read_text().splitlines()[1].split("\t")[0])
        out.append((address, stage.cmd.format(**values), [o.format(**values) for o in stage.outs], seconds))
    return out


def start(cmd: str, ws) -> subprocess.Popen:
    return subprocess.Popen(cmd, shell=True, cwd=ws, env=run_env(ws), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def import_time(ws) -> float:
    """Seconds a stage process spends before its first line of work (interpreter and imports)."""
    t0 = time.monotonic()
    assert start("python -c 'import torch, h5py, advrecover.cli'", ws).wait() == 0
    return time.monotonic() - t0


def remove(ws, outputs):
    for rel in outputs:
        (ws / rel).unlink(missing_ok=True)


def test_every_stage_survives_sigkill_and_reruns_to_the_same_bytes(workspace, tmp_path):
    ws = workspace
    floor = import_time(ws)
    rows, failures = [], []
    for k, (address, cmd, outputs, duration) in enumerate(instances(ws)):
        reference = tmp_path / "reference" / address
        for rel in outputs:
            (reference / rel).parent.mkdir(parents=True, exist_ok=True)
            (reference / rel).write_bytes((ws / rel).read_bytes())
        rng = np.random.default_rng([0, k])
        remove(ws, outputs)
        survived = 0
        for moment in rng.uniform(min(floor, 0.8 * duration), duration, KILLS):
            proc = start(cmd, ws)  # the second kill hits a run that starts from the first one's leftovers
            time.sleep(moment)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            partial = [r for r in outputs if (ws / r).exists() and not same_output(ws / r, reference / r)]
            if partial:
                failures.append(f"{address} killed at {moment:.2f} s: partial {partial}")
            survived += not partial
        assert start(cmd, ws).wait() == 0, f"{address}: the re-run after {KILLS} kills failed"
        differ = [r for r in outputs if not (ws / r).exists() or not same_output(ws / r, reference / r)]
        if differ:
            failures.append(f"{address}: differ after the re-run {differ}")
            survived = 0
        rows.append(f"| {address} | {duration:.1f} | {KILLS} | {survived} |")
    SUMMARY["kill table (tests/test_kill.py)"] = "\n".join(
        ["| stage | its run in the DAG, s | kills tried | kills survived |", "| --- | --- | --- | --- |", *rows])
    assert len(rows) == len(yaml.safe_load((ws / "dvc.yaml").read_text())["stages"])
    assert not failures, "\n".join(failures)
