# Generated from dvc.yaml by `python -m advrecover.rules`: edit dvc.yaml, then regenerate
# (tests/test_dag.py fails while this file is stale). Helpers: common.smk.
rule evaluate:
    """One defence against every test column, seen and unseen protocols, with detection rates (Li, Angelov and Suri, Tables II/III)."""
    input:
        pools=f"data/pools/{config['evaluate']['pool']}.h5",
        adversarial=outputs_under(f"data/adversarial/{config['evaluate']['pool']}"),
        victim="models/victim.pt",
        cae=outputs_under("models/cae"),
        aae=outputs_under("models/aae"),
        purifiers=outputs_under("models/purifiers"),
        ssl=outputs_under("models/ssl"),
        diffusion=outputs_under("models/diffusion"),
        victim_robust="models/victim_robust.pt",
        defences="data/plugins/defences/{defence}.json",
        purifiers_="data/plugins/purifiers.json",
        ssl_="data/plugins/ssl.json",
        code=[
            "src/advrecover/stages/evaluate.py",
            "src/advrecover/metrics.py",
            "src/advrecover/detection.py",
            "src/advrecover/inference.py",
            "src/advrecover/defences/__init__.py",
            "src/advrecover/registry.py",
            "src/advrecover/defences/none.py",
            "src/advrecover/defences/cae_aae.py",
            "src/advrecover/defences/nrp.py",
            "src/advrecover/defences/pix2pix.py",
            "src/advrecover/defences/jpeg.py",
            "src/advrecover/defences/tvm.py",
            "src/advrecover/defences/median.py",
            "src/advrecover/defences/adversarial_training.py",
            "src/advrecover/defences/reversal.py",
            "src/advrecover/defences/diffpure.py",
            "src/advrecover/models/diffusion.py",
            "src/advrecover/purifiers/__init__.py",
            "src/advrecover/purifiers/nrp.py",
            "src/advrecover/purifiers/pix2pix.py",
            "src/advrecover/ssl/__init__.py",
            "src/advrecover/ssl/contrastive.py",
            "src/advrecover/ssl/inpainting.py",
            "src/advrecover/ssl/rotation.py",
            "src/advrecover/models/features.py",
            "src/advrecover/models/autoencoder.py",
            "src/advrecover/models/victim.py",
            "src/advrecover/models/resnet.py",
            "src/advrecover/data/adversarial.py",
            "src/advrecover/data/pools.py",
            "src/advrecover/data/tensors.py",
            "src/advrecover/device.py",
        ],
    output:
        outs=[report("results/defences/{defence}/seen.csv", caption="../report/defence_table.rst", category="Evaluation per defence", labels={"defence": "{defence}", "file": "seen.csv"}), report("results/defences/{defence}/unseen.csv", caption="../report/defence_table.rst", category="Evaluation per defence", labels={"defence": "{defence}", "file": "unseen.csv"}), "results/defences/{defence}/images.csv.gz"],
        metrics=["metrics/defences/{defence}.json"],
    log:
        "logs/evaluate/{defence}.log",
    benchmark:
        "logs/benchmarks/evaluate/{defence}.tsv",
    params:
        seed=config["seed"],
        device=config["device"],
        victim=config["victim"],
        evaluate_pool=config["evaluate"]["pool"],
        evaluate_tau=config["evaluate"]["tau"],
        evaluate_batch_size=config["evaluate"]["batch_size"],
        evaluate_detection=config["evaluate"]["detection"],
        evaluate_defences_defence=lambda wildcards: config["evaluate"]["defences"][wildcards.defence],
        attack_run=config["attack"]["run"],
        recovery_train_on=config["recovery"]["train_on"],
    threads: stage_threads()
    conda:
        "../envs/advrecover.yaml"
    priority: defence_priority
    wildcard_constraints:
        defence=choices(config["evaluate"]["defences"]),
    shell:
        "advrecover evaluate --params params.yaml --defence {wildcards.defence} --pool data/pools/{params.evaluate_pool}.h5 --adversarial data/adversarial/{params.evaluate_pool} --victim models/victim.pt --models models --out results/defences/{wildcards.defence} --metrics metrics/defences/{wildcards.defence}.json --log logs/evaluate/{wildcards.defence}.log"


rule adaptive:
    """One shard of the adaptive attacks on one defence (data/adaptive/<defence>/shard-<k>), resumable unit by unit."""
    input:
        pools=f"data/pools/{config['evaluate']['pool']}.h5",
        adversarial=outputs_under(f"data/adversarial/{config['evaluate']['pool']}"),
        victim="models/victim.pt",
        cae=outputs_under("models/cae"),
        aae=outputs_under("models/aae"),
        purifiers=outputs_under("models/purifiers"),
        ssl=outputs_under("models/ssl"),
        diffusion=outputs_under("models/diffusion"),
        victim_robust="models/victim_robust.pt",
        defences="data/plugins/defences/{defence}.json",
        purifiers_="data/plugins/purifiers.json",
        ssl_="data/plugins/ssl.json",
        adaptive="data/plugins/adaptive.json",
        code=[
            "src/advrecover/stages/adaptive.py",
            "src/advrecover/adaptive/__init__.py",
            "src/advrecover/adaptive/methods.py",
            "src/advrecover/adaptive/routes.py",
            "src/advrecover/adaptive/checks.py",
            "src/advrecover/adaptive/outcomes.py",
            "src/advrecover/adaptive/units.py",
            "src/advrecover/shards.py",
            "src/advrecover/metrics.py",
            "src/advrecover/detection.py",
            "src/advrecover/inference.py",
            "src/advrecover/defences/__init__.py",
            "src/advrecover/registry.py",
            "src/advrecover/defences/none.py",
            "src/advrecover/defences/cae_aae.py",
            "src/advrecover/defences/nrp.py",
            "src/advrecover/defences/pix2pix.py",
            "src/advrecover/defences/jpeg.py",
            "src/advrecover/defences/tvm.py",
            "src/advrecover/defences/median.py",
            "src/advrecover/defences/adversarial_training.py",
            "src/advrecover/defences/reversal.py",
            "src/advrecover/defences/diffpure.py",
            "src/advrecover/models/diffusion.py",
            "src/advrecover/purifiers/__init__.py",
            "src/advrecover/purifiers/nrp.py",
            "src/advrecover/purifiers/pix2pix.py",
            "src/advrecover/ssl/__init__.py",
            "src/advrecover/ssl/contrastive.py",
            "src/advrecover/ssl/inpainting.py",
            "src/advrecover/ssl/rotation.py",
            "src/advrecover/models/features.py",
            "src/advrecover/models/autoencoder.py",
            "src/advrecover/models/victim.py",
            "src/advrecover/models/resnet.py",
            "src/advrecover/data/adversarial.py",
            "src/advrecover/data/pools.py",
            "src/advrecover/data/tensors.py",
            "src/advrecover/device.py",
        ],
    output:
        outs=["data/adaptive/{defence}/shard-{shard}.csv.gz", "data/adaptive/{defence}/shard-{shard}.json"],
    log:
        "logs/adaptive/{defence}-{shard}.log",
    benchmark:
        "logs/benchmarks/adaptive/{defence}-{shard}.tsv",
    params:
        seed=config["seed"],
        device=config["device"],
        victim=config["victim"],
        evaluate_pool=config["evaluate"]["pool"],
        evaluate_detection=config["evaluate"]["detection"],
        evaluate_defences_defence=lambda wildcards: config["evaluate"]["defences"][wildcards.defence],
        attack_run=config["attack"]["run"],
        adaptive=config["adaptive"],
    threads: stage_threads()
    conda:
        "../envs/advrecover.yaml"
    priority: defence_priority
    wildcard_constraints:
        defence=choices(config["evaluate"]["defences"]),
        shard=choices(config["adaptive"]["shards"]),
    shell:
        "advrecover adaptive --params params.yaml --defence {wildcards.defence} --shard {wildcards.shard} --pool data/pools/{params.evaluate_pool}.h5 --adversarial data/adversarial/{params.evaluate_pool} --victim models/victim.pt --models models --out data/adaptive/{wildcards.defence}/shard-{wildcards.shard}.csv.gz --totals data/adaptive/{wildcards.defence}/shard-{wildcards.shard}.json --log logs/adaptive/{wildcards.defence}-{wildcards.shard}.log"


rule adaptive_merge:
    """One defence's adaptive rows (every figure with its exact interval, flags, detection) from its shards' records."""
    input:
        adaptive=outputs_under("data/adaptive/{defence}"),
        defences="data/plugins/defences/{defence}.json",
        purifiers="data/plugins/purifiers.json",
        ssl="data/plugins/ssl.json",
        adaptive_="data/plugins/adaptive.json",
        code=[
            "src/advrecover/stages/adaptive_merge.py",
            "src/advrecover/stages/adaptive.py",
            "src/advrecover/adaptive/__init__.py",
            "src/advrecover/adaptive/methods.py",
            "src/advrecover/adaptive/routes.py",
            "src/advrecover/adaptive/checks.py",
            "src/advrecover/adaptive/outcomes.py",
            "src/advrecover/adaptive/units.py",
            "src/advrecover/shards.py",
            "src/advrecover/metrics.py",
            "src/advrecover/detection.py",
            "src/advrecover/inference.py",
            "src/advrecover/defences/__init__.py",
            "src/advrecover/registry.py",
            "src/advrecover/defences/none.py",
            "src/advrecover/defences/cae_aae.py",
            "src/advrecover/defences/nrp.py",
            "src/advrecover/defences/pix2pix.py",
            "src/advrecover/defences/jpeg.py",
            "src/advrecover/defences/tvm.py",
            "src/advrecover/defences/median.py",
            "src/advrecover/defences/adversarial_training.py",
            "src/advrecover/defences/reversal.py",
            "src/advrecover/defences/diffpure.py",
            "src/advrecover/models/diffusion.py",
            "src/advrecover/purifiers/__init__.py",
            "src/advrecover/purifiers/nrp.py",
            "src/advrecover/purifiers/pix2pix.py",
            "src/advrecover/ssl/__init__.py",
            "src/advrecover/ssl/contrastive.py",
            "src/advrecover/ssl/inpainting.py",
            "src/advrecover/ssl/rotation.py",
            "src/advrecover/models/features.py",
            "src/advrecover/models/autoencoder.py",
            "src/advrecover/models/victim.py",
            "src/advrecover/models/resnet.py",
            "src/advrecover/data/adversarial.py",
            "src/advrecover/data/pools.py",
            "src/advrecover/data/tensors.py",
        ],
    output:
        outs=[report("results/adaptive/{defence}.csv", caption="../report/adaptive_rows.rst", category="Adaptive attacks", labels={"defence": "{defence}", "file": "{defence}.csv"}), "results/adaptive/{defence}.images.csv.gz", "results/adaptive/{defence}.json"],
        metrics=["metrics/adaptive/{defence}.json"],
    log:
        "logs/adaptive_merge/{defence}.log",
    benchmark:
        "logs/benchmarks/adaptive_merge/{defence}.tsv",
    params:
        seed=config["seed"],
        evaluate_defences_defence=lambda wildcards: config["evaluate"]["defences"][wildcards.defence],
        adaptive=config["adaptive"],
    threads: stage_threads()
    conda:
        "../envs/advrecover.yaml"
    wildcard_constraints:
        defence=choices(config["evaluate"]["defences"]),
    shell:
        "advrecover adaptive_merge --params params.yaml --defence {wildcards.defence} --shards data/adaptive/{wildcards.defence} --out results/adaptive/{wildcards.defence}.csv --images results/adaptive/{wildcards.defence}.images.csv.gz --summary results/adaptive/{wildcards.defence}.json --metrics metrics/adaptive/{wildcards.defence}.json --log logs/adaptive_merge/{wildcards.defence}.log"


rule tables:
    """Assemble every defence's rows into results/{seen,unseen,adaptive}.{csv,md} and metrics/evaluate.json."""
    input:
        defences=outputs_under("results/defences"),
        adaptive=outputs_under("results/adaptive"),
        code=[
            "src/advrecover/stages/tables.py",
            "src/advrecover/metrics.py",
        ],
    output:
        outs=[report("results/seen.csv", caption="../report/seen.rst", category="Tables", labels={"file": "seen.csv"}), report("results/unseen.csv", caption="../report/unseen.rst", category="Tables", labels={"file": "unseen.csv"}), "results/seen.md", "results/unseen.md", report("results/adaptive.csv", caption="../report/adaptive.rst", category="Tables", labels={"file": "adaptive.csv"}), "results/adaptive.md", "results/adaptive_pairs.csv"],
        metrics=["metrics/evaluate.json"],
    log:
        "logs/tables.log",
    benchmark:
        "logs/benchmarks/tables.tsv",
    params:
        evaluate_defences=config["evaluate"]["defences"],
        attack_run=config["attack"]["run"],
    threads: stage_threads()
    conda:
        "../envs/advrecover.yaml"
    shell:
        "advrecover tables --params params.yaml --evaluated results/defences --adaptive results/adaptive --results results --metrics metrics/evaluate.json --log logs/tables.log"
