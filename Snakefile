# advrecover: the Snakemake entry point. Stages come from dvc.yaml (see workflow/rules/).
from snakemake.utils import min_version, validate

from advrecover.params import cross_check

min_version("9.0")


configfile: "params.yaml"


validate(config, "workflow/schemas/params.schema.yaml")
cross_check(config)


include: "workflow/rules/common.smk"


localrules:
    all,


rule all:
    input:
        [target for stage in STAGES for target in stage.targets],


include: "workflow/rules/stages.smk"
