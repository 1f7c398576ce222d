"""Read ``dvc.yaml`` rendered with the params: one DAG, two runners.

The Snakefile uses it for its target list and for dependencies on directories of outputs
(``workflow/rules/common.smk``); ``advrecover.rules`` for generating the rules; the tests for
comparing both runners.

``dvc.yaml`` is the single source of truth for stages, commands, dependencies, outputs and
parameter dependencies. ``${key.path}`` is rendered from the params (as DVC does); a ``matrix``
stage becomes one Snakemake rule whose wildcards are the matrix keys (``${item.k}`` -> ``{k}``),
so each DVC instance ``stage@v1-v2`` is one Snakemake job of rule ``stage``. Snakemake gets the
stage's parameter values as ``params`` so that its ``params`` rerun trigger mirrors DVC's.
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
    params: dict  # param_name(params key) -> value, for Snakemake's params rerun trigger
    log: str
    benchmark: str
    wildcards: dict[str, list[str]] = field(default_factory=dict)  # matrix key -> values
    directory: list[bool] = field(default_factory=list)  # per dvc.yaml dep: a directory of other stages' outputs

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

    @property
    def wildcard_constraints(self) -> dict[str, str]:
        return {k: "|".join(re.escape(v) for v in vals) for k, vals in self.wildcards.items()}


def lookup(params: dict, key: str):
    """``params['a']['b']`` for ``'a.b'``; a clear error naming the key when absent."""
    node = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise DagError(f"dvc.yaml refers to ${{{key}}}, which params.yaml does not define")
        node = node[part]
    return node


def _render(text: str, params: dict, item_fmt: str | None) -> str:
    """Snakemake pattern of a DVC string: literal text and ``${key}`` params values with braces
    escaped, ``${item.k}`` replaced by ``item_fmt.format(k=k)`` (a wildcard)."""
    out, pos = [], 0
    for m in VAR.finditer(text):
        out.append(_escape(text[pos:m.start()]))
        pos = m.end()
        key = m.group(1)
        if key.startswith("item."):
            if item_fmt is None:
                raise DagError(f"${{{key}}} used outside a matrix stage")
            out.append(item_fmt.format(k=key[5:]))
            continue
        value = lookup(params, key)
        if isinstance(value, (dict, list)):
            raise DagError(f"${{{key}}} is not a scalar; only scalars can be interpolated")
        out.append(_escape(str(value).lower() if isinstance(value, bool) else str(value)))
    return "".join(out) + _escape(text[pos:])


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
    keys = []
    for p in d.get("params") or []:
        if not isinstance(p, str):
            raise DagError(f"stage {name}: only params.yaml keys are supported in 'params', got {p!r}")
        keys.append(p)
    log = LOG.search(d["cmd"])
    if not log:
        raise DagError(f"stage {name}: its cmd must pass --log <file> (Snakemake's log directive)")
    log_path = path(log.group(1))
    suffix = "/" + "-".join("{" + k + "}" for k in wildcards) if wildcards else ""
    return Stage(
        name=name, cmd=cmd, deps=deps, outs=outs, log=log_path,
        params={param_name(k): _param_value(params, k) for k in keys},
        benchmark=f"logs/benchmarks/{name}{suffix}.tsv", wildcards=wildcards,
    )


def param_name(key: str) -> str:
    """A Snakemake params name (an identifier) for a dvc.yaml params key such as ``sample.pools``."""
    return re.sub(r"\W", "_", key)


def _param_value(params: dict, key: str):
    """The value of a params key, or for a key with ``${item.k}`` a function of the job's wildcards."""
    if "${item." not in key:
        return lookup(params, _render(key, params, None))
    pattern = _render(key, params, "{{{k}}}")
    return lambda wildcards: lookup(params, pattern.format(**dict(wildcards.items())))


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
