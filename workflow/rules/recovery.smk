# Generated from dvc.yaml by `python -m advrecover.rules`: edit dvc.yaml, then regenerate
# (tests/test_dag.py fails while this file is stale). Helpers: common.smk.
rule train_cae:
    """Train the clean-image VAE (Li, Angelov and Suri, eq. (1)) of one recovery variant on the unlabelled cae pool."""
    input:
        cae="data/pools/cae.h5",
        code=[
            "src/advrecover/stages/train_cae.py",
            "src/advrecover/models/autoencoder.py",
            "src/advrecover/training.py",
            "src/advrecover/device.py",
            "src/advrecover/data/pools.py",
            "src/advrecover/data/tensors.py",
        ],
    output:
        outs=["models/cae/{variant}.pt"],
        metrics=["metrics/train/cae/{variant}.json"],
        plots=[report("metrics/train/cae/{variant}.csv", caption="../report/history.rst", category="CAE", labels={"variant": "{variant}", "file": "{variant}.csv"})],
    log:
        "logs/train_cae/{variant}.log",
    benchmark:
        "logs/benchmarks/train_cae/{variant}.tsv",
    params:
        seed=config["seed"],
        device=config["device"],
        recovery_cae_variant=lambda wildcards: config["recovery"]["cae"][wildcards.variant],
    threads: stage_threads()
    conda:
        "../envs/advrecover.yaml"
    wildcard_constraints:
        variant=choices(config["recovery"]["variants"]),
    shell:
        "advrecover train_cae --params params.yaml --variant {wildcards.variant} --pool data/pools/cae.h5 --model models/cae/{wildcards.variant}.pt --history metrics/train/cae/{wildcards.variant}.csv --metrics metrics/train/cae/{wildcards.variant}.json --log logs/train_cae/{wildcards.variant}.log"


rule train_aae:
    """Train the AAE (Li, Angelov and Suri, eq. (2)-(6); CAE frozen) of one variant on one attack's adversarial aae images."""
    input:
        aae="data/pools/aae.h5",
        aae_="data/adversarial/aae/{train_set}.h5",
        cae="models/cae/{variant}.pt",
        code=[
            "src/advrecover/stages/train_aae.py",
            "src/advrecover/models/autoencoder.py",
            "src/advrecover/training.py",
            "src/advrecover/device.py",
            "src/advrecover/data/adversarial.py",
            "src/advrecover/data/tensors.py",
        ],
    output:
        outs=["models/aae/{variant}/{train_set}.pt"],
        metrics=["metrics/train/aae/{variant}/{train_set}.json"],
        plots=[report("metrics/train/aae/{variant}/{train_set}.csv", caption="../report/history.rst", category="AAE", labels={"variant": "{variant}", "train_set": "{train_set}", "file": "{train_set}.csv"})],
    log:
        "logs/train_aae/{variant}/{train_set}.log",
    benchmark:
        "logs/benchmarks/train_aae/{variant}-{train_set}.tsv",
    params:
        seed=config["seed"],
        device=config["device"],
        recovery_aae_variant=lambda wildcards: config["recovery"]["aae"][wildcards.variant],
    threads: stage_threads()
    conda:
        "../envs/advrecover.yaml"
    wildcard_constraints:
        variant=choices(config["recovery"]["variants"]),
        train_set=choices(config["recovery"]["train_on"]),
    shell:
        "advrecover train_aae --params params.yaml --variant {wildcards.variant} --train-set {wildcards.train_set} --pool data/pools/aae.h5 --sets data/adversarial/aae --cae models/cae/{wildcards.variant}.pt --model models/aae/{wildcards.variant}/{wildcards.train_set}.pt --history metrics/train/aae/{wildcards.variant}/{wildcards.train_set}.csv --metrics metrics/train/aae/{wildcards.variant}/{wildcards.train_set}.json --log logs/train_aae/{wildcards.variant}/{wildcards.train_set}.log"


rule train_aae_mixed:
    """Train the AAE of one variant on the mixed set (each aae image under one of the train_on attacks)."""
    input:
        aae="data/pools/aae.h5",
        aae_=outputs_under("data/adversarial/aae"),
        cae="models/cae/{variant}.pt",
        code=[
            "src/advrecover/stages/train_aae.py",
            "src/advrecover/models/autoencoder.py",
            "src/advrecover/training.py",
            "src/advrecover/device.py",
            "src/advrecover/data/adversarial.py",
            "src/advrecover/data/tensors.py",
        ],
    output:
        outs=["models/aae/{variant}/mixed.pt"],
        metrics=["metrics/train/aae/{variant}/mixed.json"],
        plots=[report("metrics/train/aae/{variant}/mixed.csv", caption="../report/history.rst", category="AAE", labels={"variant": "{variant}", "file": "mixed.csv"})],
    log:
        "logs/train_aae/{variant}/mixed.log",
    benchmark:
        "logs/benchmarks/train_aae_mixed/{variant}.tsv",
    params:
        seed=config["seed"],
        device=config["device"],
        recovery_aae_variant=lambda wildcards: config["recovery"]["aae"][wildcards.variant],
        recovery_train_on=config["recovery"]["train_on"],
    threads: stage_threads()
    conda:
        "../envs/advrecover.yaml"
    wildcard_constraints:
        variant=choices(config["recovery"]["variants"]),
    shell:
        "advrecover train_aae --params params.yaml --variant {wildcards.variant} --train-set mixed --pool data/pools/aae.h5 --sets data/adversarial/aae --cae models/cae/{wildcards.variant}.pt --model models/aae/{wildcards.variant}/mixed.pt --history metrics/train/aae/{wildcards.variant}/mixed.csv --metrics metrics/train/aae/{wildcards.variant}/mixed.json --log logs/train_aae/{wildcards.variant}/mixed.log"
