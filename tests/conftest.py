"""Shared fixtures (helpers live in helpers.py)."""

from __future__ import annotations

import copy

import pytest

from helpers import tiny_params


@pytest.fixture
def params() -> dict:
    """The tiny parameters: the whole DAG runs in seconds on 2 CPU cores."""
    return copy.deepcopy(tiny_params())
