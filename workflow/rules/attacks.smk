# Generated from dvc.yaml by `python -m advrecover.rules`: edit dvc.yaml, then regenerate
# (tests/test_dag.py fails while this file is stale). Helpers: common.smk.
rule attack:
    """One shard of one attack instance on one pool (data/adversarial/<pool>/<attack>/shard-<k>.h5)."""
    input:
        pools="data/pools/{pool}.h5",
        victim="models/victim.pt",
        attacks="data/plugins/attacks.json",
        code=[
            "src/advrecover/stages/attack.py",
            "src/advrecover/shards.py",
            "src/advrecover/attacks/__init__.py",
            "src/advrecover/registry.py",
            "src/advrecover/attacks/torchattacks_methods.py",
            "src/advrecover/attacks/deepfool.py",
            "src/advrecover/attacks/jsma.py",
            "src/advrecover/attacks/ssah.py",
            "src/advrecover/attacks/ssp.py",
            "src/advrecover/attacks/features.py",
            "src/advrecover/attacks/jacobian.py",
            "src/advrecover/models/features.py",
            "src/advrecover/data/adversarial.py",
            "src/advrecover/data/tensors.py",
            "src/advrecover/models/victim.py",
            "src/advrecover/models/resnet.py",
            "src/advrecover/device.py",
            "src/advrecover/inference.py",
        ],
    output:
        outs=["data/adversarial/{pool}/{attack}/shard-{shard}.h5"],
    log:
        "logs/attack/{pool}/{attack}-{shard}.log",
    benchmark:
        "logs/benchmarks/attack/{pool}-{attack}-{shard}.tsv",
    params:
        seed=config["seed"],
        device=config["device"],
        victim=config["victim"],
        attack_label_pools=config["attack"]["label_pools"],
        attack_batch_size=config["attack"]["batch_size"],
        attack_dtype=config["attack"]["dtype"],
        attack_compression=config["attack"]["compression"],
        attack_shards=config["attack"]["shards"],
        attack_instances_attack=lambda wildcards: config["attack"]["instances"][wildcards.attack],
    threads: stage_threads()
    conda:
        "../envs/advrecover.yaml"
    wildcard_constraints:
        pool=choices(config["attack"]["pools"]),
        attack=choices(config["attack"]["run"]),
        shard=choices(config["attack"]["shards"]),
    shell:
        "advrecover attack --params params.yaml --pool {wildcards.pool} --attack {wildcards.attack} --shard {wildcards.shard} --pools data/pools --victim models/victim.pt --out data/adversarial/{wildcards.pool}/{wildcards.attack}/shard-{wildcards.shard}.h5 --log logs/attack/{wildcards.pool}/{wildcards.attack}-{wildcards.shard}.log"


rule attack_merge:
    """Merge the shards of one (pool, attack) into data/adversarial/<pool>/<attack>.h5, with its metrics."""
    input:
        adversarial=outputs_under("data/adversarial/{pool}/{attack}"),
        code=[
            "src/advrecover/stages/attack_merge.py",
            "src/advrecover/data/adversarial.py",
        ],
    output:
        outs=["data/adversarial/{pool}/{attack}.h5"],
        metrics=[report("metrics/attack/{pool}/{attack}.json", caption="../report/attack_metrics.rst", category="Attacks", labels={"pool": "{pool}", "attack": "{attack}", "file": "{attack}.json"})],
    log:
        "logs/attack_merge/{pool}/{attack}.log",
    benchmark:
        "logs/benchmarks/attack_merge/{pool}-{attack}.tsv",
    params:
        attack_shards=config["attack"]["shards"],
    threads: stage_threads()
    conda:
        "../envs/advrecover.yaml"
    wildcard_constraints:
        pool=choices(config["attack"]["pools"]),
        attack=choices(config["attack"]["run"]),
    shell:
        "advrecover attack_merge --params params.yaml --shards data/adversarial/{wildcards.pool}/{wildcards.attack} --out data/adversarial/{wildcards.pool}/{wildcards.attack}.h5 --metrics metrics/attack/{wildcards.pool}/{wildcards.attack}.json --log logs/attack_merge/{wildcards.pool}/{wildcards.attack}.log"
