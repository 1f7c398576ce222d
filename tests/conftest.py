"""Shared fixtures (helpers live in helpers.py)."""

from __future__ import annotations

import copy

import pytest

from helpers import SUMMARY, tiny_dag, tiny_params


@pytest.fixture
def params() -> dict:
    """The tiny parameters: the whole DAG runs in seconds on 2 CPU cores."""
    return copy.deepcopy(tiny_params())


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory):
    """Two copies of the repo with the tiny params, the whole DAG run: one by Snakemake, one by DVC
    (each run once per test session, helpers.tiny_dag, the two side by side; every module gets its
    own copies)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        snake, dvc = (pool.submit(tiny_dag, tmp_path_factory, runner) for runner in ("snakemake", "dvc"))
        return snake.result(), dvc.result()


def pytest_sessionfinish(session):
    """Under pytest-xdist a worker hands its tables to the controller (pytest_testnodedown)."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["summary"] = dict(SUMMARY)


def pytest_testnodedown(node, error):
    SUMMARY.update(getattr(node, "workeroutput", {}).get("summary", {}))


def pytest_terminal_summary(terminalreporter):
    """The tables that reliability tests fill in (helpers.SUMMARY), after the test results."""
    for title, table in SUMMARY.items():
        terminalreporter.write_sep("=", title)
        terminalreporter.write_line(table)


# Files that run whole DAGs go first, so that pytest-xdist's workers (--dist loadfile) start them
# at once and finish together, and the unit tests fill the gaps.
HEAVY = ("test_presets.py", "test_slurm.py", "test_pipeline.py", "test_kill.py", "test_sharing.py", "test_results.py",
         "test_benchmarks.py", "test_bad_input.py", "test_outputs.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(HEAVY)}
    items.sort(key=lambda item: rank.get(item.path.name, len(HEAVY)))
