# Generated from dvc.yaml by `python -m advrecover.rules`: edit dvc.yaml, then regenerate
# (tests/test_dag.py fails while this file is stale). Helpers: common.smk.
rule report:
    """Draw the figures (robust accuracy against eps, image grid, training curves) and the self-contained results/report.html with every table and the provenance."""
    input:
        seen="results/seen.csv",
        unseen="results/unseen.csv",
        adaptive="results/adaptive.csv",
        adaptive_pairs="results/adaptive_pairs.csv",
        victim_train="metrics/victim_train.csv",
        victim_robust_train="metrics/victim_robust_train.csv",
        train=outputs_under("metrics/train"),
        pools=outputs_under("data/pools"),
        adversarial=outputs_under("data/adversarial"),
        models=outputs_under("models"),
        code=[
            "src/advrecover/stages/report.py",
            "src/advrecover/stages/tables.py",
            "src/advrecover/metrics.py",
            "src/advrecover/report/__init__.py",
            "src/advrecover/report/figures.py",
            "src/advrecover/report/grid.py",
            "src/advrecover/report/page.py",
            "src/advrecover/report/page.html.j2",
            "src/advrecover/report/provenance.py",
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
        outs=["results/report.html"],
        plots=[report("results/figures/robust_accuracy.png", caption="../report/robust_accuracy.rst", category="Figures", labels={"file": "robust_accuracy.png"}), report("results/figures/grid.png", caption="../report/grid.rst", category="Figures", labels={"file": "grid.png"}), report("results/figures/training.png", caption="../report/training.rst", category="Figures", labels={"file": "training.png"})],
    log:
        "logs/report.log",
    benchmark:
        "logs/benchmarks/report.tsv",
    params:
        seed=config["seed"],
        device=config["device"],
        victim=config["victim"],
        evaluate=config["evaluate"],
        attack_pools=config["attack"]["pools"],
        attack_run=config["attack"]["run"],
        recovery_variants=config["recovery"]["variants"],
        recovery_train_on=config["recovery"]["train_on"],
        purifiers=config["purifiers"],
        ssl=config["ssl"],
        report=config["report"],
    threads: stage_threads()
    conda:
        "../envs/advrecover.yaml"
    shell:
        "advrecover report --params params.yaml --results results --histories metrics --pools data/pools --adversarial data/adversarial --victim models/victim.pt --models models --figures results/figures --out results/report.html --log logs/report.log"
