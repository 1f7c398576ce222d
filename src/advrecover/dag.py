"""Read ``dvc.yaml`` rendered with the params: one DAG, two runners.

``dvc.yaml`` is the single source of truth for stages, commands, dependencies, outputs and
parameter dependencies. :func:`render` is the one reader of its ``${...}`` expressions: here it
renders ``${key.path}`` from the params (as DVC does) and ``${item.k}`` as the wildcard ``{k}``, so
a ``matrix`` stage is one Snakemake rule and each DVC instance ``stage@v1-v2`` one job of it;
``advrecover.rules`` uses it to write the literal rules (with ``params`` mirroring DVC's rerun
trigger). The Snakefile reads :func:`load_stages` for its target list and for dependencies on
directories of outputs (``workflow/rules/common.smk``); ``benchmarks/scale.py`` for each job's
command.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

VAR = re.compile(r"\$\{\s*([^}\s]+)\s*\}")
LOG = re.compile(r"--log\s+(\S+)")


class DagError(ValueError):
    """dvc.yaml uses something this translation does not support, or is inconsistent."""


@dataclass
class Stage:
    name: str
    cmd: str  # the command, braces escaped, matrix items as {k}: see command()
    deps: list[str]
    outs: list[str]  # outs, metrics and plots, in that order
    wildcards: dict[str, list[str]] = field(default_factory=dict)  # matrix key -> values
    directory: list[bool] = field(default_factory=list)  # per dvc.yaml dep: a directory of other stages' outputs
    always_changed: bool = False  # DVC runs it at every repro; Snakemake when it parses the workflow (rules.py)

    def command(self, wildcards) -> str:
        """The shell command of one job (Snakemake calls this with the job's wildcards)."""
        return self.cmd.format(**dict(wildcards.items()))

    @property
    def targets(self) -> list[str]:
        """Every output path of every instance (for the ``all`` rule)."""
        if not self.wildcards:
            return list(self.outs)
        keys = list(self.wildcards)
        out = []
        for combo in itertools.product(*self.wildcards.values()):
            values = dict(zip(keys, combo))
            out += [o.format(**values) for o in self.outs]
        return out


def lookup(params: dict, key: str):
    """``params['a']['b']`` for ``'a.b'``; a clear error naming the key when absent."""
    node = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise DagError(f"dvc.yaml refers to ${{{key}}}, which params.yaml does not define")
        node = node[part]
    return node


def render(text: str, literal, variable) -> str:
    """The one ``${...}`` renderer of ``dvc.yaml`` strings: the literal parts of ``text`` through
    ``literal``, each ``${key}`` through ``variable(key)`` (the rule generator and this module's
    Snakemake patterns are two choices of the two functions)."""
    out, pos = [], 0
    for m in VAR.finditer(text):
        out += [literal(text[pos:m.start()]), variable(m.group(1))]
        pos = m.end()
    return "".join(out) + literal(text[pos:])


def _render(text: str, params: dict, item_fmt: str | None) -> str:
    """Snakemake pattern of a DVC string: literal text and ``${key}`` params values with braces
    escaped, ``${item.k}`` replaced by ``item_fmt.format(k=k)`` (a wildcard)."""
    def variable(key: str) -> str:
        if key.startswith("item."):
            if item_fmt is None:
                raise DagError(f"${{{key}}} used outside a matrix stage")
            return item_fmt.format(k=key[5:])
        value = lookup(params, key)
        if isinstance(value, (dict, list)):
            raise DagError(f"${{{key}}} is not a scalar; only scalars can be interpolated")
        return _escape(str(value).lower() if isinstance(value, bool) else str(value))

    return render(text, _escape, variable)


def output_paths(entries) -> list[str]:
    """DVC outs/metrics/plots entries: a path string or ``{path: options}``."""
    out = []
    for e in entries or []:
        out += [e] if isinstance(e, str) else list(e)
    return out


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def stage_spec(name: str, d: dict, params: dict) -> Stage:
    if "foreach" in d:
        raise DagError(f"stage {name}: use 'matrix' rather than 'foreach' (one rule per stage, wildcards per key)")
    wildcards = {}
    for key, values in (d.get("matrix") or {}).items():
        if isinstance(values, str):
            m = VAR.fullmatch(values.strip())
            values = lookup(params, m.group(1)) if m else None
        if isinstance(values, dict):  # DVC iterates a mapping's keys (e.g. the names of evaluate.defences)
            values = list(values)
        if not isinstance(values, list) or not values:
            raise DagError(f"stage {name}: matrix key {key!r} must be a non-empty list (or ${{...}} of one)")
        wildcards[key] = [str(v) for v in values]
    def path(text: str) -> str:  # a matrix item becomes the wildcard {k}
        return _render(text, params, "{{{k}}}")

    cmd = path(d["cmd"])
    deps = [path(p) for p in d.get("deps") or []]
    outs = [path(p) for p in output_paths(d.get("outs")) + output_paths(d.get("metrics")) + output_paths(d.get("plots"))]
    for out in outs:
        missing = [k for k in wildcards if "{" + k + "}" not in out]
        if missing:
            raise DagError(f"stage {name}: output {out} must contain every matrix key, missing {missing}")
    for p in d.get("params") or []:
        if not isinstance(p, str):
            raise DagError(f"stage {name}: only params.yaml keys are supported in 'params', got {p!r}")
    if not LOG.search(d["cmd"]):
        raise DagError(f"stage {name}: its cmd must pass --log <file> (Snakemake's log directive)")
    if d.get("always_changed") and wildcards:
        raise DagError(f"stage {name}: an always_changed stage runs as one command; it cannot have a matrix")
    return Stage(name=name, cmd=cmd, deps=deps, outs=outs, wildcards=wildcards,
                 always_changed=bool(d.get("always_changed")))


def expand_directory_deps(stages: list[Stage]) -> None:
    """A dep on a directory that holds other stages' outputs (how DVC lets a stage depend on
    all shards of a matrix stage) becomes those outputs for Snakemake: a producing stage's
    wildcards that the depending stage lacks are expanded over their matrix values, and the
    outputs that then lie under the directory are the deps."""
    for stage in stages:
        deps, stage.directory = [], []
        for dep in stage.deps:
            prefix = dep.rstrip("/") + "/"
            inner = []
            for producer in stages:
                for out in producer.outs:
                    extra = [k for k in producer.wildcards if "{" + k + "}" in out and k not in stage.wildcards]
                    for combo in itertools.product(*(producer.wildcards[k] for k in extra)):
                        path = out
                        for key, value in zip(extra, combo):
                            path = path.replace("{" + key + "}", value)
                        if path.startswith(prefix):
                            inner.append(path)
            deps.extend(inner or [dep])
            stage.directory.append(bool(inner))
        stage.deps = deps


def load_stages(dvc_yaml: str | Path, params: dict) -> list[Stage]:
    """Every stage of ``dvc_yaml`` as a :class:`Stage`, in file order."""
    doc = yaml.safe_load(Path(dvc_yaml).read_text()) or {}
    stages = [stage_spec(name, d, params) for name, d in (doc.get("stages") or {}).items()]
    expand_directory_deps(stages)
    return stages
