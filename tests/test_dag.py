"""One DAG, two runners: the Snakefile's rules are dvc.yaml's stages, command for command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from advrecover import dag, rules
from helpers import REPO, copy_repo, sh, snakemake_jobs, tiny_params

MATRIX_STAGE = """
  copy:
    meta: {topic: data}
    matrix:
      pool: [cae, test]
      word: [a, b]
    cmd: >-
      python -c "import shutil, sys; shutil.copy(sys.argv[1], sys.argv[2])"
      data/pools/${item.pool}.h5 out/${item.pool}-${item.word}.h5 --log logs/copy/${item.pool}-${item.word}.log
    deps:
      - data/pools/${item.pool}.h5
    params:
      - sample.pools.${item.pool}
      - seed
    outs:
      - out/${item.pool}-${item.word}.h5
"""


def dvc_stages(ws) -> dict:
    """DVC's own reading of dvc.yaml: address -> (command, deps, outs), and the params keys."""
    from dvc.dependency import ParamsDependency
    from dvc.repo import Repo

    stages, params = {}, {}
    with Repo(str(ws)) as repo:
        outs = [o.def_path for st in repo.index.stages for o in st.outs]
        for st in repo.index.stages:
            deps = []
            for d in st.deps:
                if isinstance(d, ParamsDependency):
                    continue
                inside = [o for o in outs if o.startswith(d.def_path + "/")]  # a directory of other outputs
                deps += inside or [d.def_path]
            stages[st.name] = (st.cmd, sorted(deps), sorted(o.def_path for o in st.outs))
            params[st.name] = sorted(k for d in st.deps if isinstance(d, ParamsDependency) for k in d.params)
    return stages, params


@pytest.mark.parametrize("extra", ["", MATRIX_STAGE], ids=["shipped", "with-matrix-stage"])
def test_snakemake_rules_equal_dvc_stages(tmp_path, extra):
    ws = copy_repo(tmp_path / "ws", yaml.safe_load((REPO / "params.yaml").read_text()))
    if extra:
        text = (ws / "dvc.yaml").read_text()
        assert "\n# How" in text
        (ws / "dvc.yaml").write_text(text.replace("\n# How", extra + "\n# How", 1))
        sh(["python", "-m", "advrecover.rules"], ws)  # a stage added to dvc.yaml needs its rule regenerated
    plan = sh(["snakemake", "-n", "-F", "-p", "--cores", "1"], ws).stdout
    jobs = snakemake_jobs(plan, ws)
    stages, params = dvc_stages(ws)
    assert jobs == {name: stage for name, stage in stages.items() if name not in parse_time_stages()}
    assert prioritised(plan) == {"victim_robust"} | {f"{r}@{d}" for r, d in (
        ("evaluate", "nrp_dynamic"), ("evaluate", "reversal_contrastive"), ("evaluate", "reversal_multitask"),
        ("evaluate", "diffpure"), ("adaptive", "nrp_dynamic-0"), ("adaptive", "reversal_contrastive-0"),
        ("adaptive", "reversal_multitask-0"), ("adaptive", "diffpure-0"))}
    assert {"sample", "victim", "attack@test-fgsm-0", "attack_merge@aae-cw"} <= set(stages)
    assert not extra or "copy@test-b" in stages
    # the params each stage depends on are the same keys under both runners
    doc = yaml.safe_load((ws / "dvc.yaml").read_text())["stages"]
    for name, names in generated_params(ws).items():
        dvc_keys = {k for address, keys in params.items() if address.split("@")[0] == name for k in keys}
        declared = {rules.param_name(dag.render(k, str, lambda v: v[5:])) for k in doc[name].get("params") or []}
        in_cmd = {rules.param_name(m.group(1)) for m in dag.VAR.finditer(doc[name]["cmd"])}
        assert declared <= names <= declared | in_cmd, name
        if "matrix" not in doc[name]:
            assert declared == {rules.param_name(k) for k in dvc_keys}, name


def parse_time_stages() -> set[str]:
    """The stages DVC runs at every repro (``always_changed``): Snakemake runs them as it parses."""
    return {n for n, d in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items() if d.get("always_changed")}


def test_an_always_changed_stage_runs_when_snakemake_parses(tmp_path):
    """The stage ``plugins`` is no Snakemake job: the main process runs its command as it parses the
    workflow (and writes its outputs then), so a dry run already sees current stamps."""
    assert parse_time_stages() == {"plugins"}
    ws = copy_repo(tmp_path / "ws", tiny_params())
    sh(["snakemake", "-n", "--cores", "1"], ws)
    stamp = json.loads((ws / "data/plugins/defences/bit_depth.json").read_text())
    assert stamp["method"] == "bit_depth" and stamp["distribution"].startswith("advrecover-example ")
    assert set(stamp["modules"]) == {"advrecover_example", "advrecover_example.bitdepth"}
    victim = json.loads((ws / "data/plugins/victim.json").read_text())
    assert victim["module"] == "advrecover_example.classifier:SmallCNN"


def test_every_stage_that_runs_methods_depends_on_their_plugin_stamps():
    """A stage that loads a method family depends on that family's stamp (a defence job on its own
    defence's), and the stages that build the victim on its stamp: editing a plugin re-runs them."""
    for name, stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items():
        deps = set(stage["deps"])
        for family in ("attacks", "purifiers", "ssl", "adaptive", "defences"):
            if f"src/advrecover/{family}/__init__.py" not in deps:
                continue
            stamp = f"data/plugins/{family}.json"
            if family == "defences":
                stamp = ("data/plugins/defences/${item.defence}.json" if "defence" in (stage.get("matrix") or {})
                         else "data/plugins/defences")
            assert stamp in deps, (name, stamp)
    for name in ("victim", "victim_robust"):
        assert "data/plugins/victim.json" in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][name]["deps"]


def prioritised(plan: str) -> set[str]:
    """``rule@wildcard`` of the jobs a Snakemake dry run lists with a priority above 0."""
    found = set()
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", plan):
        head, priority = re.match(r"(?:local)?rule (\w+):", block), re.search(r"\n\s+priority: (\d+)", block)
        if head and priority and int(priority.group(1)) > 0:
            wildcards = re.search(r"wildcards: (.*)", block)
            found.add("@".join([head.group(1), *(["-".join(re.findall(r"\w+=([^,\s]+)", wildcards.group(1)))]
                                                 if wildcards else [])]))
    return found


def generated_params(ws) -> dict[str, set[str]]:
    """Rule name -> the names of its ``params`` directive, read from the generated rule files."""
    found = {}
    for path in (ws / "workflow/rules").glob("*.smk"):
        for block in re.split(r"\n(?=rule )", path.read_text())[1:]:
            section = re.search(r"\n    params:\n((?:        .*\n)*)", block).group(1)
            found[re.match(r"rule (\w+):", block).group(1)] = set(re.findall(r"^        (\w+)=", section, re.M))
    return found


def test_a_new_defence_adds_its_evaluate_and_adaptive_jobs(tmp_path):
    """Under both runners: the jobs of the DAG with one more defence are those without it plus
    ``evaluate@<it>``, one ``adaptive@<it>-<k>`` per shard and ``adaptive_merge@<it>`` (the tables
    job is shared and re-assembles)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["adaptive"]["shards"] = [0, 1]  # two shards: the new defence gets both
    before = copy_repo(tmp_path / "before", params)
    params["evaluate"]["defences"]["another"] = {"method": "none"}
    after = copy_repo(tmp_path / "after", params)
    for runner in ("dvc", "snakemake"):
        if runner == "dvc":
            jobs = [set(dvc_stages(ws)[0]) for ws in (before, after)]
        else:
            jobs = [set(snakemake_jobs(sh(["snakemake", "-n", "-F", "-p", "--cores", "1"], ws).stdout, ws))
                    for ws in (before, after)]
        assert jobs[1] - jobs[0] == {"evaluate@another", "adaptive@another-0", "adaptive@another-1",
                                     "adaptive_merge@another"} and jobs[0] <= jobs[1], runner


def test_generated_rules_are_current():
    """workflow/rules/<topic>.smk are what `python -m advrecover.rules` writes from dvc.yaml."""
    generated = rules.generate(REPO)
    assert set(generated) == {str(p.relative_to(REPO)) for p in (REPO / "workflow/rules").glob("*.smk")} - \
        {"workflow/rules/common.smk"}
    for path, text in generated.items():
        assert (REPO / path).read_text() == text, f"{path} is stale: run `python -m advrecover.rules`"


def test_each_rule_is_literal_with_named_directives():
    text = "".join(p.read_text() for p in (REPO / "workflow/rules").glob("*.smk") if p.name != "common.smk")
    names = re.findall(r"^rule (\w+):", text, re.M)
    assert sorted(names) == sorted(set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]) - parse_time_stages())
    for block in re.split(r"\n(?=rule )", text)[1:]:
        for directive in ("input", "output", "log", "benchmark", "params", "shell"):
            assert f"\n    {directive}:" in block, (block.splitlines()[0], directive)
    assert "for stage in" not in text


def test_list_rules_names_every_stage(tmp_path):
    ws = copy_repo(tmp_path / "ws", tiny_params())
    listed = set(sh(["snakemake", "--list-rules"], ws).stdout.split())
    assert set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]) - parse_time_stages() | {"all"} <= listed


def test_lint_is_clean_and_the_slurm_profile_plans(tmp_path):
    ws = copy_repo(tmp_path / "ws", tiny_params())
    lint = sh(["snakemake", "--lint"], ws, check=False)
    assert lint.returncode == 0 and "Congratulations" in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    plan = sh(["snakemake", "--profile", "slurm", "-n"], ws)
    assert "victim" in plan.stdout and "gpu=1" in plan.stdout


def test_matrix_stage_becomes_one_rule_with_wildcards():
    params = {"seed": 3, "pools": ["cae", "test"], "sample": {"pools": {"cae": {"n": 1}, "test": {"n": 2}}}}
    doc = yaml.safe_load("stages:" + MATRIX_STAGE.replace("[cae, test]", "${pools}"))
    (spec,) = [dag.stage_spec(n, d, params) for n, d in doc["stages"].items()]
    assert spec.wildcards == {"pool": ["cae", "test"], "word": ["a", "b"]}
    assert spec.outs == ["out/{pool}-{word}.h5"]
    assert sorted(spec.targets) == ["out/cae-a.h5", "out/cae-b.h5", "out/test-a.h5", "out/test-b.h5"]
    wc = {"pool": "test", "word": "b"}
    assert spec.command(wc).endswith("out/test-b.h5 --log logs/copy/test-b.log")


def test_braces_and_scalars_render_like_dvc():
    stage = dag.stage_spec("s", {"cmd": "run --flag ${a.b} --json '{\"k\": 1}' --on ${t} --log l.log",
                                 "outs": ["o_${a.b}.txt"]}, {"a": {"b": 5}, "t": True})
    assert stage.command({}) == "run --flag 5 --json '{\"k\": 1}' --on true --log l.log"
    assert stage.outs == ["o_5.txt"]


@pytest.mark.parametrize("stage, message", [
    ({"foreach": [1], "do": {"cmd": "x"}}, "use 'matrix'"),
    ({"cmd": "x --out o"}, "--log"),
    ({"cmd": "x ${nope} --log l"}, "does not define"),
    ({"cmd": "x ${d} --log l"}, "not a scalar"),
    ({"matrix": {"k": [1, 2]}, "cmd": "x --log l${item.k}", "outs": ["fixed.txt"]}, "every matrix key"),
    ({"matrix": {"k": []}, "cmd": "x --log l"}, "non-empty list"),
])
def test_unsupported_or_inconsistent_stages_are_clear_errors(stage, message):
    with pytest.raises(dag.DagError, match=message):
        dag.stage_spec("s", stage, {"d": {"x": 1}})


# modules that move files and parameters around without changing any result; scale.py only
# describes what a job costs (each stage's ``workload``, read by benchmarks/scale.py)
PLUMBING = {"__init__.py", "__main__.py", "cli.py", "params.py", "config.py", "io.py", "dag.py", "scale.py",
            "stages/__init__.py", "data/__init__.py", "models/__init__.py"}


def imported(module: str, src: Path) -> set[str]:
    """The advrecover modules (paths relative to ``src``) that importing ``module`` imports (its
    imports outside function bodies, as Python runs them), transitively; plumbing is listed, not
    followed. Read from the source: no interpreter per stage."""
    import ast

    def statements(node):
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield child
                yield from statements(child)

    def path(name):
        file = src / (name.replace(".", "/") + ".py")
        return file if file.is_file() else src / name.replace(".", "/") / "__init__.py"

    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        rel = str(path(name).relative_to(src / "advrecover"))
        if rel in seen:
            continue
        seen.add(rel)
        todo += [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]  # its packages
        if rel in PLUMBING - {"__init__.py"} and name != module:
            continue
        package = name if path(name).name == "__init__.py" else name.rpartition(".")[0]
        text = path(name).read_text()
        if path(name).name == "__init__.py" and "load_modules(__name__" in text:  # a registry imports its family
            todo += [f"{name}.{p.stem}" for p in path(name).parent.glob("*.py") if p.stem != "__init__"]
        for node in statements(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
                for alias in node.names:  # ``from .. import x`` names a module when x is one
                    sub = f"{target}.{alias.name}"
                    todo.append(sub if path(sub).is_file() else target)
    return seen


def test_each_stage_lists_the_source_files_it_runs():
    """Every advrecover module a stage imports is one of its dvc.yaml deps, so editing it re-runs the stage."""
    for name, stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items():
        module = stage["cmd"].split()[1]  # `advrecover <stage module> ...`
        used = {f"src/advrecover/{u}" for u in imported(f"advrecover.stages.{module}", REPO / "src") - PLUMBING}
        deps = {d for d in stage["deps"] if d.startswith("src/")}
        assert used <= deps, (name, sorted(used - deps))
        assert all((REPO / d).is_file() for d in deps), name


def test_a_report_caption_needs_the_stage_category():
    """An output annotated with a caption becomes a ``report(...)`` item of its stage's category."""

    entry = {"results/${item.defence}.csv": {"cache": False, "meta": {"caption": "x.rst"}}}
    stage = {"matrix": {"defence": ["a"]}, "meta": {"topic": "evaluation", "category": "Tables"}}
    assert rules._output(entry, "s", stage) == ('report("results/{defence}.csv", caption="../report/x.rst", '
                                                'category="Tables", labels={"defence": "{defence}", "file": "{defence}.csv"})')
    assert rules._output("plain.csv", "s", stage) == '"plain.csv"'
    with pytest.raises(dag.DagError, match="meta.category"):
        rules._output(entry, "s", {"meta": {"topic": "evaluation"}})


def test_every_report_caption_exists():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    captions = {(o if isinstance(o, str) else next(iter(o.values())) or {}).get("meta", {}).get("caption")
                for d in stages.values() for section in ("outs", "metrics", "plots") for o in d.get(section) or []
                if not isinstance(o, str)}
    captions.discard(None)
    assert captions and all((REPO / "workflow/report" / c).is_file() for c in captions), captions
