# advrecover: the Snakemake entry point. The rules in workflow/rules/ are generated from dvc.yaml,
# the single source of truth for stages (`python -m advrecover.rules`).
from pathlib import Path

from snakemake.utils import min_version, validate

from advrecover.params import check_methods, check_paths, cross_check

min_version("9.0")


configfile: "params.yaml"


report: "workflow/report/workflow.rst"


validate(config, "workflow/schemas/params.schema.yaml")
cross_check(config)
if workflow.is_main_process:  # once per workflow, not again in each cluster job (it imports every method family)
    check_methods(config)
if not all(Path(f"data/pools/{name}.h5").is_file() for name in config["sample"]["pools"]):
    check_paths(config)  # the pools are to be drawn: a missing dataset stops here, naming its parameter


include: "workflow/rules/common.smk"


localrules:
    all,


rule all:
    input:
        all_targets,


include: "workflow/rules/data.smk"
include: "workflow/rules/attacks.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/recovery.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/report.smk"
