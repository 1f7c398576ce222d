"""Kill anything: every stage of dvc.yaml, SIGKILLed at seeded random moments and re-run.

The stages are read from dvc.yaml (one instance per matrix stage), so a stage added later is
covered without editing this file. The tiny DAG as Snakemake left it gives the reference bytes.
The stage's outputs are removed and it runs once uninterrupted, timed under this test's own load
(the DAG's times, taken beside other runs, were longer: most kills drawn from them landed after the
job had ended); then, KILLS times in a row (each run starting from what the killed one left), its
command is started in its own process group and the whole group SIGKILLed (as a scheduler does) at
a moment drawn between the end of its imports and that time. After each kill, every output that exists must be the
complete reference (nothing complete-looking but partial); after one plain re-run, every output
must equal the reference, apart from the timings of helpers.TIMINGS. The stages go through two
lanes side by side, each in its own copy of the DAG (a stage never reads a file that the other
lane is killing).
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
LANES = 2  # stages killed side by side, each lane in its own copy of the DAG


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory):
    """A copy per lane of the tiny DAG, complete, as Snakemake left it (with its jobs' benchmark files)."""
    return [tiny_dag(tmp_path_factory, "snakemake") for _ in range(LANES)]


def instances(ws) -> list[tuple[str, str, list[str], float]]:
    """(stage address, command, outputs, seconds Snakemake's run took) of each dvc.yaml stage's
    first instance, in file order; not the always-changed stage plugins, which is no Snakemake job
    (it runs as Snakemake parses; its stamps are written atomically, tests/stages/test_plugins.py)."""
    params = yaml.safe_load((ws / "params.yaml").read_text())
    out = []
    for stage in dag.load_stages(ws / "dvc.yaml", params):
        if stage.always_changed:
            continue
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


def kill_and_rerun(ws, k: int, instance, floor: float, reference) -> tuple[str, list[str]]:
    """One stage instance (the ``k``-th) killed KILLS times in a row, then re-run: its table row and its failures."""
    address, cmd, outputs, duration = instance
    for rel in outputs:
        (reference / rel).parent.mkdir(parents=True, exist_ok=True)
        (reference / rel).write_bytes((ws / rel).read_bytes())
    rng = np.random.default_rng([0, k])
    remove(ws, outputs)
    t0 = time.monotonic()  # its uninterrupted run here, under this test's load: the kills' time scale
    assert start(cmd, ws).wait() == 0, f"{address}: the uninterrupted run failed"
    here = time.monotonic() - t0
    remove(ws, outputs)
    survived, landed, failures = 0, 0, []
    for moment in rng.uniform(min(floor, 0.8 * here), here, KILLS):
        proc = start(cmd, ws)  # the second kill hits a run that starts from the first one's leftovers
        try:
            proc.wait(timeout=moment)  # a run that ends before its moment has nothing left to kill
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            landed += 1
        partial = [r for r in outputs if (ws / r).exists() and not same_output(ws / r, reference / r)]
        if partial:
            failures.append(f"{address} killed at {moment:.2f} s: partial {partial}")
        survived += not partial
    assert start(cmd, ws).wait() == 0, f"{address}: the re-run after {KILLS} kills failed"
    differ = [r for r in outputs if not (ws / r).exists() or not same_output(ws / r, reference / r)]
    if differ:
        failures.append(f"{address}: differ after the re-run {differ}")
        survived = 0
    return f"| {address} | {duration:.1f} | {here:.1f} | {KILLS} | {landed} | {survived} |", failures


def test_every_stage_survives_sigkill_and_reruns_to_the_same_bytes(workspaces, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    floor = import_time(workspaces[0])
    todo = list(enumerate(instances(workspaces[0])))

    def lane(i):
        return [(k, kill_and_rerun(workspaces[i], k, instance, floor, tmp_path / "reference" / instance[0]))
                for k, instance in todo[i::LANES]]

    with ThreadPoolExecutor(LANES) as pool:
        done = dict(kv for lane_done in pool.map(lane, range(LANES)) for kv in lane_done)
    rows = [done[k][0] for k in sorted(done)]
    failures = [f for k in sorted(done) for f in done[k][1]]
    SUMMARY["kill table (tests/test_kill.py)"] = "\n".join(
        ["| stage | its run in the DAG, s | its run here, s | kills tried | kills that hit a running job | survived |",
         "| --- | --- | --- | --- | --- | --- |", *rows])
    stages = yaml.safe_load((workspaces[0] / "dvc.yaml").read_text())["stages"]
    assert len(rows) == len([s for s in stages.values() if not s.get("always_changed")])
    assert not failures, "\n".join(failures)


def test_a_killed_adaptive_job_resumes_from_its_finished_units(workspaces, tmp_path):
    """An adaptive job SIGKILLed once some of its units are saved, then re-run: the same bytes, and the
    re-run loads the finished units instead of computing them again (its log counts both)."""
    ws = workspaces[0]
    address, cmd, outputs, _ = next(i for i in instances(ws) if i[0].startswith("adaptive@none"))
    log = ws / cmd.split("--log ")[1].split()[0]
    whole = sum(units_of(log.read_text()))  # every unit of the job (its last run computed or loaded each)
    for rel in outputs:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes((ws / rel).read_bytes())
    remove(ws, outputs)
    partial = ws / (outputs[0] + ".partial")
    proc = start(cmd, ws)
    while proc.poll() is None and len(list(partial.glob("*.npz"))) < whole // 3:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = len(list(partial.glob("*.npz")))
    assert 0 < saved < whole, f"{address}: killed with {saved} of {whole} units saved"
    assert start(cmd, ws).wait() == 0
    computed, resumed = units_of(log.read_text())
    SUMMARY["adaptive resume (tests/test_kill.py)"] = (
        f"{address}: SIGKILLed with {saved} of its {whole} units saved; the re-run loaded {resumed} and computed "
        f"{computed}")
    assert resumed == saved and computed + resumed == whole
    assert all(same_output(ws / rel, tmp_path / rel) for rel in outputs)  # the records byte for byte
    assert not partial.exists()  # dropped once the outputs are written


def units_of(log: str) -> tuple[int, int]:
    """(units computed, units resumed) from an adaptive job's log."""
    import re

    computed, resumed = re.findall(r"(\d+) units computed, (\d+) resumed", log)[-1]
    return int(computed), int(resumed)
