# Generated from dvc.yaml by `python -m advrecover.rules`: edit dvc.yaml, then regenerate
# (tests/test_dag.py fails while this file is stale). Helpers: common.smk.
rule evaluate:
    """Every defence against every test column, seen and unseen protocols (tables like Li, Angelov and Suri, Tables II/III)."""
    input:
        pools=f"data/pools/{config['evaluate']['pool']}.h5",
        adversarial=outputs_under(f"data/adversarial/{config['evaluate']['pool']}"),
        victim="models/victim.pt",
        cae=outputs_under("models/cae"),
        aae=outputs_under("models/aae"),
        code=[
            "src/advrecover/stages/evaluate.py",
            "src/advrecover/metrics.py",
            "src/advrecover/defences/__init__.py",
            "src/advrecover/registry.py",
            "src/advrecover/defences/none.py",
            "src/advrecover/defences/cae_aae.py",
            "src/advrecover/models/autoencoder.py",
            "src/advrecover/models/victim.py",
            "src/advrecover/models/resnet.py",
            "src/advrecover/data/adversarial.py",
            "src/advrecover/data/pools.py",
            "src/advrecover/data/tensors.py",
            "src/advrecover/device.py",
        ],
    output:
        outs=["results/seen.csv", "results/unseen.csv", "results/seen.md", "results/unseen.md"],
        metrics=["metrics/evaluate.json"],
    log:
        "logs/evaluate.log",
    benchmark:
        "logs/benchmarks/evaluate.tsv",
    params:
        seed=config["seed"],
        device=config["device"],
        victim=config["victim"],
        evaluate=config["evaluate"],
        attack_run=config["attack"]["run"],
        recovery_train_on=config["recovery"]["train_on"],
        evaluate_pool=config["evaluate"]["pool"],
    threads: stage_threads()
    conda:
        "../envs/advrecover.yaml"
    shell:
        "advrecover evaluate --params params.yaml --pool data/pools/{params.evaluate_pool}.h5 --adversarial data/adversarial/{params.evaluate_pool} --victim models/victim.pt --models models --results results --metrics metrics/evaluate.json --log logs/evaluate.log"
