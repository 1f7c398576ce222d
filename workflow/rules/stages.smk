# One rule per dvc.yaml stage; a matrix stage is one rule with a wildcard per matrix key.
# Resources for clusters are set per rule name in profiles/slurm/config.yaml.
# The command travels in params.cmd: a shell directive would be evaluated when the job runs,
# after this loop has moved on to the last stage.


for stage in STAGES:

    rule:
        name:
            stage.name
        input:
            stage.deps,
        output:
            stage.outs,
        params:
            cmd=stage.command,
            **stage.params,
        log:
            stage.log,
        benchmark:
            stage.benchmark
        wildcard_constraints:
            **stage.wildcard_constraints,
        conda:
            "../envs/advrecover.yaml"
        shell:
            "{params.cmd}"
