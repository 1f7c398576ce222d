# The stages of dvc.yaml, rendered with the validated params (src/advrecover/dag.py).
from snakemake_interface_common.exceptions import WorkflowError

from advrecover.dag import load_stages

STAGES = load_stages("dvc.yaml", config)


def stage_threads():
    """Local runs: every job takes all local cores (torch stages use every CPU of their allocation,
    see advrecover.device), so jobs run one at a time. Under a cluster executor no total is set and
    the allocation comes from the profile's cpus_per_task instead."""
    try:
        return workflow.cores
    except WorkflowError:
        return 1
