# One rule per dvc.yaml stage; a matrix stage is one rule with a wildcard per matrix key.
# Resources for clusters are set per rule name in profiles/slurm/config.yaml.
# The command travels in params.cmd: a shell directive would be evaluated when the job runs,
# after this loop has moved on to the last stage. Every job takes all local cores (torch
# stages use every CPU they may, see advrecover.device), so local runs go one job at a time;
# on a cluster each job gets its own allocation (slurm/config.yaml).


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
        threads: stage_threads()
        wildcard_constraints:
            **stage.wildcard_constraints,
        conda:
            "../envs/advrecover.yaml"
        shell:
            "{params.cmd}"
