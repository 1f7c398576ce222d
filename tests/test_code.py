"""How the code is kept: short functions, and stage entry points that take keywords only."""

from __future__ import annotations

import ast
import importlib
import inspect

import yaml

from helpers import REPO

MAX_LINES = 50


def test_no_function_under_src_exceeds_fifty_lines():
    long = []
    for path in sorted((REPO / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_every_stage_run_takes_keyword_arguments_only():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    modules = {stage["cmd"].split()[1] for stage in stages.values()}  # `advrecover <module> ...`
    for name in sorted(modules):
        run = importlib.import_module(f"advrecover.stages.{name}").run
        positional = [p.name for p in inspect.signature(run).parameters.values() if p.kind != p.KEYWORD_ONLY]
        assert not positional, f"advrecover.stages.{name}.run takes {positional} by position"
