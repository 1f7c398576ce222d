"""Write the Snakemake rules of ``dvc.yaml``: one literal, named rule per stage, in topic files.

``dvc.yaml`` stays the single source of truth; ``workflow/rules/<topic>.smk`` (the topic is the
stage's ``meta.topic``) are generated from it and committed, so a Snakemake user reads ordinary
rules with named ``input``, ``output``, ``log``, ``benchmark``, ``params`` and ``shell``, and a
test fails when they are stale. Generated rules read every parameter value from ``config`` when
Snakemake parses them, so editing ``params.yaml`` (an attack list, a variant) needs no
regeneration; editing a stage in ``dvc.yaml`` does. A stage marked ``always_changed`` (DVC runs it at
every ``dvc repro``: it reads what DVC cannot track) is no rule: Snakemake runs its command when it
parses the workflow, so its outputs are current before Snakemake compares times. A stage's ``meta.priority`` is its Snakemake
priority, a number or the name of a helper of ``workflow/rules/common.smk`` that gives one per job
(DVC runs stages in order):

    python -m advrecover.rules            # rewrite workflow/rules/*.smk from dvc.yaml
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

from . import dag
from .params import load as load_params

VAR = dag.VAR
HEADER = ("# Generated from dvc.yaml by `python -m advrecover.rules`: edit dvc.yaml, then regenerate\n"
          "# (tests/test_dag.py fails while this file is stale). Helpers: common.smk.\n")


def _config(key: str) -> str:
    """Python expression of a params key, ``a.b`` -> ``config["a"]["b"]``."""
    return "config" + "".join(f'["{part}"]' for part in key.split("."))


def param_name(key: str) -> str:
    """A Snakemake params name (an identifier) for a dvc.yaml params key such as ``sample.pools``."""
    return re.sub(r"\W", "_", key)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _path(text: str) -> str:
    """Python expression of a dvc.yaml path: ``${item.k}`` becomes the wildcard ``{k}``, ``${a.b}``
    the value of ``config`` (an f-string then)."""
    def escape(t):
        return t.replace("{", "{{").replace("}", "}}")

    if all(m.group(1).startswith("item.") for m in VAR.finditer(text)):
        return _quote(dag.render(text, escape, lambda k: "{" + k[5:] + "}"))
    return "f" + _quote(dag.render(text, lambda t: escape(escape(t)),
                                   lambda k: "{{" + k[5:] + "}}" if k.startswith("item.") else
                                   "{" + _config(k).replace('"', "'") + "}"))


def _shell(cmd: str, scalars: dict) -> str:
    """The command with wildcards as ``{wildcards.k}`` and params values as ``{params.name}``."""
    def variable(key):
        if key.startswith("item."):
            return "{wildcards." + key[5:] + "}"
        scalars[param_name(key)] = _config(key)
        return "{params." + param_name(key) + "}"

    return dag.render(cmd, lambda t: t.replace("{", "{{").replace("}", "}}"), variable)


def _trigger(key: str) -> tuple[str, str]:
    """(name, value expression) of a params dependency: Snakemake re-runs a job when it changes, as DVC does."""
    name = param_name(dag.render(key, str, lambda k: k[5:]))
    parts = [(f"wildcards.{p[7:-1]}" if p.startswith("${item.") else f'"{p}"') for p in re.split(r"\.(?![^{]*\})", key)]
    if any(p.startswith("wildcards.") for p in parts):
        return name, "lambda wildcards: config" + "".join(f"[{p}]" for p in parts)
    return name, _config(key)


def _inputs(d: dict, rendered: dag.Stage) -> list[str]:
    """Named input lines: data and models (a directory of other stages' outputs through
    ``outputs_under``), then the source files the stage runs (``code``)."""
    lines, code, taken = [], [], {"code"}
    for i, p in enumerate(d.get("deps") or []):
        if p.startswith("src/"):
            code.append(p)
            continue
        arg = f"outputs_under({_path(p)})" if rendered.directory[i] else _path(p)
        lines.append(f"        {_input_name(p, taken)}={arg},")
    lines.append("        code=[\n" + "".join(f"            {_path(p)},\n" for p in code) + "        ],")
    return lines


def _input_name(path: str, taken: set[str]) -> str:
    """A readable input name: the file's stem, or the nearest directory named without a variable."""
    for part in reversed(Path(path).parts):
        name = re.sub(r"\W", "_", dag.render(part, str, lambda k: "").split(".")[0]).strip("_")
        if name:
            break
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def parse_time_text(name: str, d: dict) -> str:
    """An ``always_changed`` stage: its command, run by the main Snakemake process as it parses."""
    scalars: dict = {}
    shell = _shell(d["cmd"], scalars)
    if scalars or "{wildcards." in shell:
        raise dag.DagError(f"stage {name}: an always_changed stage's command may not use params values")
    return (f"# Stage {name}: {d.get('desc', '')}\n# DVC runs it at every `dvc repro` (always_changed); Snakemake "
            f"here, as it parses the workflow,\n# before it compares file times (once, not in cluster jobs).\n"
            f"if workflow.is_main_process:\n    shell({_quote(shell.replace('{{', '{').replace('}}', '}'))})\n")


def rule_text(name: str, d: dict, rendered: dag.Stage) -> str:
    """The literal rule of one dvc.yaml stage."""
    if d.get("always_changed"):
        return parse_time_text(name, d)
    scalars: dict = {}
    shell = _shell(d["cmd"], scalars)
    log = _path(dag.LOG.search(d["cmd"]).group(1))
    outs = [(section, [_output(e, name, d) for e in d.get(section) or []]) for section in ("outs", "metrics", "plots")]
    suffix = "/" + "-".join("{" + k + "}" for k in d.get("matrix") or {}) if d.get("matrix") else ""
    lines = [f"rule {name}:", f'    """{d.get("desc", "")}"""', "    input:", *_inputs(d, rendered),
             "    output:"]
    lines += [f"        {section}=[" + ", ".join(paths) + "]," for section, paths in outs if paths]
    lines += ["    log:", f"        {log},", "    benchmark:", f"        {_quote(f'logs/benchmarks/{name}{suffix}.tsv')},"]
    triggers = dict(_trigger(k) for k in d.get("params") or [])
    named = list(triggers.items()) + sorted((n, v) for n, v in scalars.items() if n not in triggers)
    lines += ["    params:", *[f"        {n}={v}," for n, v in named]]
    lines += ["    threads: stage_threads()", "    conda:", '        "../envs/advrecover.yaml"']
    if (d.get("meta") or {}).get("priority"):
        lines.append(f"    priority: {d['meta']['priority']}")
    if d.get("matrix"):
        lines += ["    wildcard_constraints:", *[f"        {k}={_choices(v)}," for k, v in d["matrix"].items()]]
    lines += ["    shell:", f"        {_quote(shell)}"]
    return "\n".join(lines) + "\n"


def _output(entry, stage: str, d: dict) -> str:
    """An output path; one whose DVC annotation names a caption (``meta: {caption: file.rst}``) is
    marked for ``snakemake --report``: the caption under workflow/report/, the stage's
    ``meta.category``, and labels from the matrix keys and the file's name."""
    path, options = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
    caption = ((options or {}).get("meta") or {}).get("caption")
    if not caption:
        return _path(path)
    category = (d.get("meta") or {}).get("category")
    if not category:
        raise dag.DagError(f"stage {stage}: {path} has a report caption; set meta.category (its report section)")
    labels = {**{k: "{" + k + "}" for k in d.get("matrix") or {}},
              "file": dag.render(Path(path).name, str, lambda k: "{" + k.removeprefix("item.") + "}")}
    text = ", ".join(f"{_quote(k)}: {_quote(v)}" for k, v in labels.items())
    return (f"report({_path(path)}, caption={_quote('../report/' + caption)}, category={_quote(category)}, "
            f"labels={{{text}}})")


def _choices(values) -> str:
    """A wildcard constraint: the matrix values, from ``config`` when dvc.yaml names a params list."""
    if isinstance(values, str):
        return f'choices({_config(VAR.fullmatch(values.strip()).group(1))})'
    return "choices([" + ", ".join(_quote(str(v)) for v in values) + "])"


def generate(root: Path) -> dict[str, str]:
    """``workflow/rules/<topic>.smk`` -> text, for every topic of ``root/dvc.yaml``."""
    doc = yaml.safe_load((root / "dvc.yaml").read_text())
    rendered = {s.name: s for s in dag.load_stages(root / "dvc.yaml", load_params(root / "params.yaml"))}
    files: dict[str, list[str]] = {}
    for name, d in doc["stages"].items():
        topic = (d.get("meta") or {}).get("topic")
        if not topic:
            raise dag.DagError(f"stage {name}: set meta.topic (the workflow/rules/<topic>.smk file of its rule)")
        files.setdefault(f"workflow/rules/{topic}.smk", []).append(rule_text(name, d, rendered[name]))
    return {path: HEADER + "\n\n".join(rules) for path, rules in files.items()}


def main(argv=None) -> int:
    root = Path(argv[0] if argv else ".")
    for path, text in generate(root).items():
        (root / path).write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
