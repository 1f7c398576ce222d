# Helpers of the generated rule files (data.smk, attacks.smk, recovery.smk, evaluation.smk) and of
# the target list of the Snakefile: the stages of dvc.yaml rendered with the validated params
# (src/advrecover/dag.py).
import os
import re

from snakemake_interface_common.exceptions import WorkflowError

from advrecover.dag import load_stages
from advrecover.defences import adaptive_needs
from advrecover.device import requested_threads

STAGES = load_stages("dvc.yaml", config)


def all_targets(wildcards):
    """Every output of every stage instance under the current params (the Snakefile's targets)."""
    return [target for stage in STAGES for target in stage.targets]


def outputs_under(directory):
    """Input function for a DVC dependency on a directory of other stages' outputs: every output
    of the DAG under ``directory`` (its wildcards filled in from the job's)."""

    def inputs(wildcards):
        prefix = os.path.join(os.path.normpath(directory.format(**dict(wildcards.items()))), "")
        return [target for target in all_targets(wildcards) if target.startswith(prefix)]

    return inputs


def choices(values):
    """A wildcard constraint: exactly one of ``values`` (a params list)."""
    return "|".join(re.escape(str(v)) for v in values)


def stage_threads():
    """Local runs: a job takes $ADVRECOVER_THREADS cores when it is set (`make run` sets 1: on two
    cores two jobs run side by side, and each stage sets torch's thread count from the same
    variable, see advrecover.device), else every local core, so jobs run one at a time. Under a
    cluster executor no total is set and the allocation comes from the profile's cpus_per_task."""
    try:
        cores = workflow.cores
    except WorkflowError:
        return 1
    return min(requested_threads() or cores, cores)


def defence_priority(wildcards):
    """Jobs of a random defence first (1, else 0): judged over many draws with EOT, they are the
    longest evaluate and adaptive jobs, and started last they would run alone at the end."""
    return int(adaptive_needs(config["evaluate"]["defences"][wildcards.defence])["random"])
