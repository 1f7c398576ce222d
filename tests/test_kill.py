"""Kill anything: every stage of dvc.yaml, SIGKILLed at seeded random moments and re-run.

The stages are read from dvc.yaml (one instance per matrix stage), so a stage added later is
covered without editing this file. For each: an uninterrupted run gives the reference bytes;
then, a few times, the stage's outputs are removed, its command started in its own process
group and the whole group SIGKILLed (as a scheduler does) at a moment drawn between the end of
its imports and its uninterrupted duration. After the kill, every output that exists must be
the complete reference (nothing complete-looking but partial); after a plain re-run, every
output must equal the reference, apart from the timings of helpers.TIMINGS.
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
from helpers import SUMMARY, copy_repo, run_env, same_output, sh, tiny_params

pytestmark = pytest.mark.slow
KILLS = 3  # per stage


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The tiny DAG, complete, in a fresh copy of the repo."""
    ws = copy_repo(tmp_path_factory.mktemp("kill"), tiny_params())
    sh(["dvc", "repro"], ws)
    return ws


def instances(ws) -> list[tuple[str, str, list[str]]]:
    """(stage address, command, outputs) of each dvc.yaml stage's first instance, in file order."""
    params = yaml.safe_load((ws / "params.yaml").read_text())
    out = []
    for stage in dag.load_stages(ws / "dvc.yaml", params):
        values = {k: v[0] for k, v in stage.wildcards.items()}
        address = stage.name + ("@" + "-".join(values.values()) if values else "")
        out.append((address, stage.cmd.format(**values), [o.format(**values) for o in stage.outs]))
    return out


def start(cmd: str, ws) -> subprocess.Popen:
    return subprocess.Popen(cmd, shell=True, cwd=ws, env=run_env(ws), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def run_timed(cmd: str, ws) -> float:
    t0 = time.monotonic()
    assert start(cmd, ws).wait() == 0, cmd
    return time.monotonic() - t0


def import_time(ws) -> float:
    """Seconds a stage process spends before its first line of work (interpreter and imports)."""
    return run_timed("python -c 'import torch, h5py, advrecover.cli'", ws)


def remove(ws, outputs):
    for rel in outputs:
        (ws / rel).unlink(missing_ok=True)


def test_every_stage_survives_sigkill_and_reruns_to_the_same_bytes(workspace, tmp_path):
    ws = workspace
    floor = import_time(ws)
    rows, failures = [], []
    for k, (address, cmd, outputs) in enumerate(instances(ws)):
        reference = tmp_path / "reference" / address
        for rel in outputs:
            (reference / rel).parent.mkdir(parents=True, exist_ok=True)
            (reference / rel).write_bytes((ws / rel).read_bytes())
        remove(ws, outputs)
        duration = run_timed(cmd, ws)
        assert all(same_output(ws / r, reference / r) for r in outputs), f"{address}: not deterministic"
        rng = np.random.default_rng([0, k])
        survived = 0
        for moment in rng.uniform(min(floor, 0.8 * duration), duration, KILLS):
            remove(ws, outputs)
            proc = start(cmd, ws)
            time.sleep(moment)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            left = [r for r in outputs if (ws / r).exists()]
            partial = [r for r in left if not same_output(ws / r, reference / r)]
            assert start(cmd, ws).wait() == 0, f"{address}: the re-run after a kill failed"
            differ = [r for r in outputs if not (ws / r).exists() or not same_output(ws / r, reference / r)]
            if partial or differ:
                failures.append(f"{address} killed at {moment:.2f} s: partial {partial}, differ after re-run {differ}")
            else:
                survived += 1
        rows.append(f"| {address} | {duration:.1f} | {KILLS} | {survived} |")
    SUMMARY["kill table (tests/test_kill.py)"] = "\n".join(
        ["| stage | uninterrupted s | kills tried | kills survived |", "| --- | --- | --- | --- |", *rows])
    assert len(rows) == len(yaml.safe_load((ws / "dvc.yaml").read_text())["stages"])
    assert not failures, "\n".join(failures)
