# Generated from dvc.yaml by `python -m advrecover.rules`: edit dvc.yaml, then regenerate
# (tests/test_dag.py fails while this file is stale). Helpers: common.smk.
rule victim_robust:
    """Train the adversarial-training reference, the victim's ResNet on its own adversarial examples (Wong, Rice and Kolter 2020; Madry et al. 2018)."""
    input:
        cae="data/pools/cae.h5",
        aae="data/pools/aae.h5",
        test="data/pools/test.h5",
        victim="data/pools/victim.h5",
        victim_="models/victim.pt",
        victim__="data/plugins/victim.json",
        attacks="data/plugins/attacks.json",
        code=[
            "src/advrecover/stages/victim_robust.py",
            "src/advrecover/stages/victim.py",
            "src/advrecover/stages/plugins.py",
            "src/advrecover/models/victim.py",
            "src/advrecover/models/resnet.py",
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
            "src/advrecover/data/pools.py",
            "src/advrecover/data/tensors.py",
            "src/advrecover/training.py",
            "src/advrecover/device.py",
            "src/advrecover/inference.py",
        ],
    output:
        outs=["models/victim_robust.pt"],
        metrics=["metrics/victim_robust.json"],
        plots=[report("metrics/victim_robust_train.csv", caption="../report/history.rst", category="Adversarial training", labels={"file": "victim_robust_train.csv"})],
    log:
        "logs/victim_robust.log",
    benchmark:
        "logs/benchmarks/victim_robust.tsv",
    params:
        seed=config["seed"],
        device=config["device"],
        victim=config["victim"],
        robust_victim=config["robust_victim"],
    threads: stage_threads()
    conda:
        "../envs/advrecover.yaml"
    priority: 1
    shell:
        "advrecover victim_robust --params params.yaml --pools data/pools --victim models/victim.pt --model models/victim_robust.pt --metrics metrics/victim_robust.json --history metrics/victim_robust_train.csv --log logs/victim_robust.log"


rule train_purifier:
    """Train one purifier (NRP, Naseer et al. 2020; Pix2Pix, Mezhoudi 2023) without labels on the cae pool and its SSP perturbations."""
    input:
        cae="data/pools/cae.h5",
        victim="models/victim.pt",
        attacks="data/plugins/attacks.json",
        purifiers="data/plugins/purifiers.json",
        code=[
            "src/advrecover/stages/train_purifier.py",
            "src/advrecover/purifiers/__init__.py",
            "src/advrecover/purifiers/nrp.py",
            "src/advrecover/purifiers/pix2pix.py",
            "src/advrecover/registry.py",
            "src/advrecover/attacks/__init__.py",
            "src/advrecover/attacks/torchattacks_methods.py",
            "src/advrecover/attacks/deepfool.py",
            "src/advrecover/attacks/jsma.py",
            "src/advrecover/attacks/ssah.py",
            "src/advrecover/attacks/ssp.py",
            "src/advrecover/attacks/features.py",
            "src/advrecover/attacks/jacobian.py",
            "src/advrecover/models/features.py",
            "src/advrecover/training.py",
            "src/advrecover/models/victim.py",
            "src/advrecover/models/resnet.py",
            "src/advrecover/data/pools.py",
            "src/advrecover/data/tensors.py",
            "src/advrecover/device.py",
            "src/advrecover/inference.py",
        ],
    output:
        outs=["models/purifiers/{purifier}.pt"],
        metrics=["metrics/train/purifiers/{purifier}.json"],
        plots=[report("metrics/train/purifiers/{purifier}.csv", caption="../report/history.rst", category="Purifiers", labels={"purifier": "{purifier}", "file": "{purifier}.csv"})],
    log:
        "logs/train_purifier/{purifier}.log",
    benchmark:
        "logs/benchmarks/train_purifier/{purifier}.tsv",
    params:
        seed=config["seed"],
        device=config["device"],
        victim=config["victim"],
        purifiers_purifier=lambda wildcards: config["purifiers"][wildcards.purifier],
        attack_instances=config["attack"]["instances"],
    threads: stage_threads()
    conda:
        "../envs/advrecover.yaml"
    wildcard_constraints:
        purifier=choices(config["purifiers"]),
    shell:
        "advrecover train_purifier --params params.yaml --purifier {wildcards.purifier} --pool data/pools/cae.h5 --victim models/victim.pt --model models/purifiers/{wildcards.purifier}.pt --history metrics/train/purifiers/{wildcards.purifier}.csv --metrics metrics/train/purifiers/{wildcards.purifier}.json --log logs/train_purifier/{wildcards.purifier}.log"


rule train_ssl:
    """Train one self-supervised head (contrastive, rotation, inpainting; Mao et al. 2021, Lee, Lai and Hsu) on the frozen victim's features without labels."""
    input:
        pools=f"data/pools/{config['ssl']['pool']}.h5",
        victim="models/victim.pt",
        ssl="data/plugins/ssl.json",
        code=[
            "src/advrecover/stages/train_ssl.py",
            "src/advrecover/ssl/__init__.py",
            "src/advrecover/ssl/contrastive.py",
            "src/advrecover/ssl/inpainting.py",
            "src/advrecover/ssl/rotation.py",
            "src/advrecover/registry.py",
            "src/advrecover/models/features.py",
            "src/advrecover/training.py",
            "src/advrecover/models/victim.py",
            "src/advrecover/models/resnet.py",
            "src/advrecover/data/pools.py",
            "src/advrecover/data/tensors.py",
            "src/advrecover/device.py",
            "src/advrecover/inference.py",
        ],
    output:
        outs=["models/ssl/{task}.pt"],
        metrics=["metrics/train/ssl/{task}.json"],
        plots=[report("metrics/train/ssl/{task}.csv", caption="../report/history.rst", category="Self-supervised heads", labels={"task": "{task}", "file": "{task}.csv"})],
    log:
        "logs/train_ssl/{task}.log",
    benchmark:
        "logs/benchmarks/train_ssl/{task}.tsv",
    params:
        seed=config["seed"],
        device=config["device"],
        victim=config["victim"],
        ssl_pool=config["ssl"]["pool"],
        ssl_train=config["ssl"]["train"],
        ssl_tasks_task=lambda wildcards: config["ssl"]["tasks"][wildcards.task],
    threads: stage_threads()
    conda:
        "../envs/advrecover.yaml"
    wildcard_constraints:
        task=choices(config["ssl"]["tasks"]),
    shell:
        "advrecover train_ssl --params params.yaml --task {wildcards.task} --pool data/pools/{params.ssl_pool}.h5 --victim models/victim.pt --model models/ssl/{wildcards.task}.pt --history metrics/train/ssl/{wildcards.task}.csv --metrics metrics/train/ssl/{wildcards.task}.json --log logs/train_ssl/{wildcards.task}.log"


rule train_diffusion:
    """Train the denoising diffusion model of the diffpure defences (Nie et al. 2022; Ho, Jain and Abbeel 2020) without labels, or read a local pretrained one."""
    input:
        pools=f"data/pools/{config['diffusion']['pool']}.h5",
        code=[
            "src/advrecover/stages/train_diffusion.py",
            "src/advrecover/models/diffusion.py",
            "src/advrecover/models/victim.py",
            "src/advrecover/models/resnet.py",
            "src/advrecover/training.py",
            "src/advrecover/data/pools.py",
            "src/advrecover/data/tensors.py",
            "src/advrecover/device.py",
        ],
    output:
        outs=["models/diffusion/diffusion.pt"],
        metrics=["metrics/train/diffusion.json"],
        plots=[report("metrics/train/diffusion.csv", caption="../report/history.rst", category="Diffusion model", labels={"file": "diffusion.csv"})],
    log:
        "logs/train_diffusion.log",
    benchmark:
        "logs/benchmarks/train_diffusion.tsv",
    params:
        seed=config["seed"],
        device=config["device"],
        sample_image_size=config["sample"]["image_size"],
        diffusion=config["diffusion"],
        diffusion_pool=config["diffusion"]["pool"],
    threads: stage_threads()
    conda:
        "../envs/advrecover.yaml"
    shell:
        "advrecover train_diffusion --params params.yaml --pool data/pools/{params.diffusion_pool}.h5 --model models/diffusion/diffusion.pt --history metrics/train/diffusion.csv --metrics metrics/train/diffusion.json --log logs/train_diffusion.log"
