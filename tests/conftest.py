"""Shared fixtures (helpers live in helpers.py)."""

from __future__ import annotations

import copy

import pytest

from helpers import REPO, SUMMARY, tiny_dag, tiny_params


@pytest.fixture
def params() -> dict:
    """The tiny parameters (the whole DAG runs in seconds on 2 CPU cores) for the unit tests of the
    stages, with the victim our ResNet trained in the test (mode train) where the tiny DAG deploys the
    example plugin's stored classifier (mode module, which tests/stages/test_victim.py covers)."""
    p = copy.deepcopy(tiny_params())
    p["victim"]["mode"] = "train"
    return p


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory):
    """Two copies of the repo with the tiny params, the whole DAG run: one by Snakemake, one by DVC
    (each run once per test session, helpers.tiny_dag, the two side by side; every module gets its
    own copies)."""
    from concurrent.futures import ThreadPoolExecutor

    tmp_path_factory.getbasetemp()  # made here, not by two threads at once
    with ThreadPoolExecutor(2) as pool:
        snake, dvc = (pool.submit(tiny_dag, tmp_path_factory, runner) for runner in ("snakemake", "dvc"))
        return snake.result(), dvc.result()


def pytest_configure(config):
    """The example plugin (examples/plugin), which the tiny DAG deploys, is installed into the test
    environment (editable, as `make install` does) when it is missing; once, by the controller."""
    import os
    import subprocess
    import sys
    from importlib import metadata

    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    try:
        metadata.distribution("advrecover-example")
    except metadata.PackageNotFoundError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e",
                        str(REPO / "examples/plugin")], check=True)


def pytest_sessionfinish(session):
    """Under pytest-xdist a worker hands its tables to the controller (pytest_testnodedown)."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["summary"] = dict(SUMMARY)


def pytest_testnodedown(node, error):
    SUMMARY.update(getattr(node, "workeroutput", {}).get("summary", {}))


BACKGROUND = {}  # the pytest-xdist controller's background runs: name -> Popen


def pytest_xdist_node_collection_finished(node, ids):
    """The SLURM run of tests/test_slurm.py starts in the background of the controller as soon as a
    worker has collected its test: its jobs mostly wait on the scheduler, so the workers run the
    other tests meanwhile and the test checks what the run left (test_slurm.outcome)."""
    import test_slurm

    if "slurm" not in BACKGROUND and test_slurm.TEST in ids:
        BACKGROUND["slurm"] = test_slurm.start_in_background(test_slurm.slurm_root(node.config._tmp_path_factory))


def pytest_unconfigure(config):
    """A background run still going when the session ends (interrupted, failed) is stopped with its cluster."""
    import os
    import signal

    for proc in BACKGROUND.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
    if BACKGROUND:
        import test_slurm

        test_slurm.slurm_down(test_slurm.slurm_root(config._tmp_path_factory))


def pytest_terminal_summary(terminalreporter):
    """The tables that reliability tests fill in (helpers.SUMMARY), after the test results."""
    for title, table in SUMMARY.items():
        terminalreporter.write_sep("=", title)
        terminalreporter.write_line(table)


# Files that run whole DAGs go first, so that pytest-xdist's workers (--dist loadfile) start them
# at once and finish together, and the unit tests fill the gaps; the SLURM test goes last: its run
# started in the background (pytest_xdist_node_collection_finished), it only checks the outcome.
HEAVY = ("test_presets.py", "test_pipeline.py", "test_kill.py", "test_sharing.py", "test_results.py",
         "test_benchmarks.py", "test_bad_input.py", "test_outputs.py")
LAST = ("test_slurm.py",)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(HEAVY)} | {name: len(HEAVY) + 1 + i for i, name in enumerate(LAST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(HEAVY)))
