"""The ``advrecover`` command: one subcommand per pipeline stage (the names used in dvc.yaml).

This is the only layer that reads ``params.yaml``; it validates it against the schema, then
calls the stage's ``run`` with plain values and paths.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from . import params as params_mod
from .data.sources import DataError

log = logging.getLogger("advrecover")


def _sample(args, p, device):
    from .stages import sample

    s = p["sample"]
    sample.run(pools=s["pools"], image_size=s["image_size"], seed=p["seed"], max_bad_fraction=s["max_bad_fraction"],
               out_dir=args.out, metrics_path=args.metrics, workers=args.workers, progress=not args.quiet)


def _victim(args, p, device):
    from .stages import victim

    metrics = victim.run(cfg=_victim_config(p), seed=p["seed"], device=device, pools_dir=args.pools, model_path=args.model,
                         metrics_path=args.metrics, history_path=args.history, progress=not args.quiet)
    log.info("victim clean accuracy: %s", metrics["accuracy"])


def _victim_robust(args, p, device):
    from .stages import victim_robust

    r = p["robust_victim"]
    victim_robust.run(cfg=_victim_config(p), attack_spec=r["attack"], epochs=r["epochs"], seed=p["seed"], device=device,
                      pools_dir=args.pools, model_path=args.model, metrics_path=args.metrics,
                      history_path=args.history, progress=not args.quiet)


def _attack(args, p, device):
    from . import attacks
    from .stages import attack

    a = p["attack"]
    if args.attack not in a["instances"]:
        raise ValueError(f"--attack {args.attack}: not defined under attack.instances")
    attacks.check(a["instances"])
    attack.run(name=args.attack, spec=a["instances"][args.attack], pool_name=args.pool,
               pool_path=Path(args.pools) / f"{args.pool}.h5", victim_path=args.victim, victim_cfg=_victim_config(p),
               shard=args.shard, n_shards=len(a["shards"]), batch_size=a["batch_size"], dtype=a["dtype"],
               seed=p["seed"], device=device, out_path=args.out, compression=a["compression"],
               use_labels=args.pool in a["label_pools"], progress=not args.quiet)


def _attack_merge(args, p, device):
    from .stages import attack_merge

    shards = [Path(args.shards) / f"shard-{k}.h5" for k in range(len(p["attack"]["shards"]))]
    attack_merge.run(shard_paths=shards, out_path=args.out, metrics_path=args.metrics)


def _train_cae(args, p, device):
    from .stages import train_cae

    cfg = params_mod.section(train_cae.CAEConfig, _variant(p, "cae", args.variant))
    train_cae.run(cfg=cfg, seed=p["seed"], device=device, pool_path=args.pool,
                  model_path=args.model, history_path=args.history, metrics_path=args.metrics, progress=not args.quiet)


def _train_aae(args, p, device):
    from .stages import train_aae

    train_on = p["recovery"]["train_on"]
    if args.train_set != "mixed" and args.train_set not in train_on:
        raise ValueError(f"--train-set {args.train_set}: not in recovery.train_on {train_on} (or 'mixed')")
    names = train_on if args.train_set == "mixed" else [args.train_set]
    cfg = params_mod.section(train_aae.AAEConfig, _variant(p, "aae", args.variant))
    train_aae.run(cfg=cfg, train_set=args.train_set,
                  sets={a: Path(args.sets) / f"{a}.h5" for a in names}, pool_path=args.pool, cae_path=args.cae,
                  seed=p["seed"], device=device, model_path=args.model, history_path=args.history,
                  metrics_path=args.metrics, progress=not args.quiet)


def _train_purifier(args, p, device):
    from . import purifiers
    from .stages import train_purifier

    if args.purifier not in p["purifiers"]:
        raise ValueError(f"--purifier {args.purifier}: not defined under purifiers {list(p['purifiers'])}")
    purifiers.check(p["purifiers"])
    spec = p["purifiers"][args.purifier]
    train_purifier.run(name=args.purifier, spec=spec,
                       cfg=params_mod.section(train_purifier.PurifierTraining, spec["train"]),
                       attack_spec=p["attack"]["instances"][spec["train"]["attack"]], pool_path=args.pool,
                       victim_path=args.victim, victim_cfg=_victim_config(p), seed=p["seed"], device=device,
                       model_path=args.model, history_path=args.history, metrics_path=args.metrics,
                       progress=not args.quiet)


def _train_ssl(args, p, device):
    from . import ssl
    from .stages import train_ssl

    tasks = p["ssl"]["tasks"]
    if args.task not in tasks:
        raise ValueError(f"--task {args.task}: not defined under ssl.tasks {list(tasks)}")
    ssl.check(tasks)
    train_ssl.run(name=args.task, spec=tasks[args.task], cfg=params_mod.section(train_ssl.SSLTraining, p["ssl"]["train"]),
                  pool_path=args.pool, victim_path=args.victim, victim_cfg=_victim_config(p), seed=p["seed"],
                  device=device, model_path=args.model, history_path=args.history, metrics_path=args.metrics,
                  progress=not args.quiet)


def _evaluate(args, p, device):
    from .stages import evaluate

    e = p["evaluate"]
    evaluate.run(defence=args.defence, spec=_defence(p, args.defence), columns=p["attack"]["run"],
                 train_on=p["recovery"]["train_on"], pool_path=args.pool, adversarial_dir=args.adversarial,
                 victim_path=args.victim, victim_cfg=_victim_config(p), models_dir=args.models, tau=e["tau"],
                 batch_size=e["batch_size"], calibration_share=e["detection"]["calibration_share"],
                 fpr=e["detection"]["fpr"], seed=p["seed"], device=device, out_dir=args.out)


def _adaptive(args, p, device):
    from .stages import adaptive

    d = p["evaluate"]["detection"]
    adaptive.run(defence=args.defence, spec=_defence(p, args.defence),
                 cfg=params_mod.section(adaptive.AdaptiveConfig, adaptive.budget(p["adaptive"], args.defence)),
                 calibration_share=d["calibration_share"], fpr=d["fpr"], columns=p["attack"]["run"],
                 pool_path=args.pool, adversarial_dir=args.adversarial, victim_path=args.victim,
                 victim_cfg=_victim_config(p), models_dir=args.models, seed=p["seed"], device=device,
                 out_path=args.out, images_path=args.images, summary_path=args.summary, metrics_path=args.metrics)


def _tables(args, p, device):
    from .stages import tables

    tables.run(defences=list(p["evaluate"]["defences"]), columns=p["attack"]["run"], evaluated_dir=args.evaluated,
               adaptive_dir=args.adaptive, results_dir=args.results, metrics_path=args.metrics)


def _report(args, p, device):
    from .stages import report

    evaluated = report.Evaluated(defences=p["evaluate"]["defences"], columns=p["attack"]["run"],
                                 train_on=p["recovery"]["train_on"])
    report.run(cfg=params_mod.section(report.ReportConfig, p["report"]), evaluated=evaluated,
               histories=report.histories(p, args.histories),
               artifacts=report.artifacts(p, pools_dir=args.pools, adversarial_dir=args.adversarial,
                                          victim_path=args.victim, models_dir=args.models),
               params_path=args.params, results_dir=args.results, pool_path=Path(args.pools) / f"{p['evaluate']['pool']}.h5",
               adversarial_dir=Path(args.adversarial) / p["evaluate"]["pool"], victim_path=args.victim,
               victim_cfg=_victim_config(p), models_dir=args.models, seed=p["seed"], device=device,
               figures_dir=args.figures, out_path=args.out)


def _defence(p: dict, name: str) -> dict:
    """The spec of one defence, after checking every one (a typo anywhere stops every job)."""
    from . import defences as registry

    defences = p["evaluate"]["defences"]
    registry.check(defences)
    if name not in defences:
        raise ValueError(f"--defence {name}: not defined under evaluate.defences {list(defences)}")
    return defences[name]


def _victim_config(p: dict):
    from .models.victim import VictimConfig

    return params_mod.section(VictimConfig, p["victim"])


def _device(p: dict, stage: str):
    """The torch device of ``p["device"]``, with torch using every CPU of this job's allocation
    (set once, here, for every stage that runs torch)."""
    if stage in ("sample", "attack_merge", "tables"):
        return None
    from .device import resolve, use_allocated_cpus

    use_allocated_cpus()
    return resolve(p["device"])


def _variant(p: dict, part: str, variant: str) -> dict:
    if variant not in p["recovery"]["variants"]:
        raise ValueError(f"--variant {variant}: not in recovery.variants {p['recovery']['variants']}")
    return p["recovery"][part][variant]


POOLS = ("--pools", "directory holding the pool files")
MODELS = ("--models", "directory holding the defences' models (cae/, aae/, purifiers/, ssl/, victim_robust.pt)")
VICTIM = ("--victim", "victim state dict")
HISTORY = ("--history", "output CSV: per-epoch loss terms")
# stage -> (help, handler, its arguments: (flag, help) for a required path, (flag, argparse kwargs) otherwise)
STAGES = {
    "sample": ("draw the disjoint image pools into HDF5", _sample, [
        ("--out", "directory for <pool>.h5"), ("--metrics", "JSON with per-pool counts and checksums"),
        ("--workers", {"type": int, "default": len(os.sched_getaffinity(0)),
                       "help": "decoding processes (default: the CPUs this job may use; does not change the output)"})]),
    "victim": ("train or load the victim classifier", _victim, [
        POOLS, ("--model", "output state dict (.pt)"), ("--metrics", "output JSON: clean accuracy per labelled pool"),
        ("--history", "output CSV: per-epoch training loss and accuracy")]),
    "victim_robust": ("train the adversarially trained reference classifier", _victim_robust, [
        POOLS, ("--model", "output model (.pt)"), ("--metrics", "output JSON: clean accuracy per labelled pool"),
        ("--history", "output CSV: per-epoch training loss and accuracy")]),
    "attack": ("one shard of one attack on one pool, into HDF5", _attack, [
        ("--pool", "pool name (a key of sample.pools)"), ("--attack", "instance name (a key of attack.instances)"),
        ("--shard", {"type": int, "required": True, "help": "shard id, one of attack.shards"}),
        POOLS, VICTIM, ("--out", "output shard file (.h5)")]),
    "attack_merge": ("merge the shards of one (pool, attack)", _attack_merge, [
        ("--shards", "directory holding shard-<k>.h5"), ("--out", "output set (.h5)"),
        ("--metrics", "output JSON: success rate, accuracies, norms")]),
    "train_cae": ("train the clean-image VAE of one recovery variant", _train_cae, [
        ("--variant", "one of recovery.variants"), ("--pool", "the cae pool file"), ("--model", "output model (.pt)"),
        HISTORY, ("--metrics", "output JSON: reconstruction PSNR")]),
    "train_aae": ("train the AAE of one variant on one training set", _train_aae, [
        ("--variant", "one of recovery.variants"), ("--train-set", "an attack of recovery.train_on, or mixed"),
        ("--pool", "the aae pool file (its checksum must match the sets')"),
        ("--sets", "directory holding <attack>.h5 adversarial sets of the aae pool"),
        ("--cae", "the trained CAE of the variant (kept frozen)"), ("--model", "output model (.pt)"), HISTORY,
        ("--metrics", "output JSON: PSNR of the recovery to its input")]),
    "train_purifier": ("train one purifier of purifiers without labels", _train_purifier, [
        ("--purifier", "a key of purifiers"), ("--pool", "the unlabelled cae pool file"), VICTIM,
        ("--model", "output generator (.pt)"), HISTORY,
        ("--metrics", "output JSON: PSNR of the purified perturbed and clean images")]),
    "train_ssl": ("train one self-supervised head of ssl.tasks without labels", _train_ssl, [
        ("--task", "a key of ssl.tasks"), ("--pool", "the pool file of ssl.pool"), VICTIM,
        ("--model", "output head (.pt)"), HISTORY, ("--metrics", "output JSON: the head's loss before and after")]),
    "evaluate": ("one defence against every test column, both protocols", _evaluate, [
        ("--defence", "a key of evaluate.defences"), ("--pool", "the evaluated pool file"),
        ("--adversarial", "directory holding the pool's <attack>.h5 sets"),
        VICTIM, MODELS,
        ("--out", "output directory: <protocol>.csv of this defence")]),
    "adaptive": ("attack one defence adaptively (through it), with sanity checks", _adaptive, [
        ("--defence", "a key of evaluate.defences"), ("--pool", "the evaluated pool file"),
        ("--adversarial", "directory holding the pool's <attack>.h5 sets (the transfer images)"),
        VICTIM, MODELS, ("--out", "output CSV: this defence's rows"),
        ("--images", "output CSV (gzip): one row per image, run and judgement draw"),
        ("--summary", "output JSON: the leaderboard summary (clean and robust accuracy, flags)"),
        ("--metrics", "output JSON: the same rows")]),
    "tables": ("assemble every defence's rows into the result tables", _tables, [
        ("--evaluated", "directory holding <defence>/<protocol>.csv"), ("--adaptive", "directory holding <defence>.csv"),
        ("--results", "output directory: seen, unseen and adaptive tables (.csv and .md)"),
        ("--metrics", "output JSON: accuracy per defence and column, adaptive worst cases")]),
    "report": ("draw the figures and write the self-contained HTML report", _report, [
        ("--results", "directory holding the seen, unseen and adaptive tables (.csv); ablation-*.csv when run"),
        ("--histories", "directory holding the trainers' history CSVs (victim_train.csv, train/...)"),
        POOLS, ("--adversarial", "directory holding <pool>/<attack>.h5 adversarial sets"), VICTIM, MODELS,
        ("--figures", "output directory of the figures (.png)"), ("--out", "output HTML page")]),
}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="advrecover", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    common.add_argument("--log", help="also write log lines to this file (replaced at each run)")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = ap.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, (text, handler, arguments) in STAGES.items():
        stage = sub.add_parser(name, parents=[common], help=text)
        for flag, spec in arguments:
            stage.add_argument(flag, **({"required": True, "help": spec} if isinstance(spec, str) else spec))
        stage.set_defaults(func=handler)
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    handlers = [logging.StreamHandler(sys.stderr)]
    if args.log:
        Path(args.log).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(args.log, mode="w"))  # truncated: one run per log
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        handlers=handlers, force=True)
    try:
        p = params_mod.load(args.params)
        args.func(args, p, _device(p, args.stage))
    except (params_mod.ParamsError, DataError, OSError, ValueError) as exc:  # OSError: files, full disks
        log.error("%s", exc)
        print(f"advrecover {args.stage}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
