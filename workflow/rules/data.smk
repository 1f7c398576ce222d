# Generated from dvc.yaml by `python -m advrecover.rules`: edit dvc.yaml, then regenerate
# (tests/test_dag.py fails while this file is stale). Helpers: common.smk.
# Stage plugins: Stamp the source files of the methods and the classifier that come from other packages (plugins, victim.mode module); rewritten only when they change.
# DVC runs it at every `dvc repro` (always_changed); Snakemake here, as it parses the workflow,
# before it compares file times (once, not in cluster jobs).
if workflow.is_main_process:
    shell("advrecover plugins --params params.yaml --out data/plugins --log logs/plugins.log")


rule sample:
    """Draw the disjoint image pools cae, aae, test and the victim's training pool into HDF5."""
    input:
        code=[
            "src/advrecover/stages/sample.py",
            "src/advrecover/data/sources.py",
            "src/advrecover/data/builtin.py",
            "src/advrecover/data/pools.py",
        ],
    output:
        outs=["data/pools/cae.h5", "data/pools/aae.h5", "data/pools/test.h5", "data/pools/victim.h5"],
        metrics=["metrics/sample.json"],
    log:
        "logs/sample.log",
    benchmark:
        "logs/benchmarks/sample.tsv",
    params:
        seed=config["seed"],
        sample=config["sample"],
    threads: stage_threads()
    conda:
        "../envs/advrecover.yaml"
    shell:
        "advrecover sample --params params.yaml --out data/pools --metrics metrics/sample.json --log logs/sample.log"


rule victim:
    """Train (or load) the victim classifier; clean accuracy on every labelled pool."""
    input:
        cae="data/pools/cae.h5",
        aae="data/pools/aae.h5",
        test="data/pools/test.h5",
        victim="data/pools/victim.h5",
        victim_="data/plugins/victim.json",
        code=[
            "src/advrecover/stages/victim.py",
            "src/advrecover/stages/plugins.py",
            "src/advrecover/models/victim.py",
            "src/advrecover/models/resnet.py",
            "src/advrecover/data/pools.py",
            "src/advrecover/data/tensors.py",
            "src/advrecover/training.py",
            "src/advrecover/device.py",
            "src/advrecover/inference.py",
        ],
    output:
        outs=["models/victim.pt"],
        metrics=["metrics/victim.json"],
        plots=[report("metrics/victim_train.csv", caption="../report/history.rst", category="Victim", labels={"file": "victim_train.csv"})],
    log:
        "logs/victim.log",
    benchmark:
        "logs/benchmarks/victim.tsv",
    params:
        seed=config["seed"],
        device=config["device"],
        victim=config["victim"],
    threads: stage_threads()
    conda:
        "../envs/advrecover.yaml"
    shell:
        "advrecover victim --params params.yaml --pools data/pools --model models/victim.pt --metrics metrics/victim.json --history metrics/victim_train.csv --log logs/victim.log"
