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

    sample.run(**sample.from_params(p, args), out_dir=args.out, metrics_path=args.metrics, workers=args.workers,
               progress=not args.quiet)


def _plugins(args, p, device):
    from .stages import plugins

    for rel in plugins.run(p=p, out_dir=args.out):
        log.info("plugin code changed: %s", rel)


def _victim(args, p, device):
    from .stages import victim

    metrics = victim.run(**victim.from_params(p, args), device=device, pools_dir=args.pools, model_path=args.model,
                         metrics_path=args.metrics, history_path=args.history, progress=not args.quiet)
    log.info("victim clean accuracy: %s", metrics["accuracy"])


def _victim_robust(args, p, device):
    from .stages import victim_robust

    victim_robust.run(**victim_robust.from_params(p, args), device=device, pools_dir=args.pools,
                      victim_path=args.victim, model_path=args.model,
                      metrics_path=args.metrics, history_path=args.history, progress=not args.quiet)


def _attack(args, p, device):
    from .stages import attack

    attack.run(**attack.from_params(p, args), pool_path=Path(args.pools) / f"{args.pool}.h5", victim_path=args.victim,
               device=device, out_path=args.out, progress=not args.quiet)


def _attack_merge(args, p, device):
    from .stages import attack_merge

    attack_merge.run(**attack_merge.from_params(p, args), out_path=args.out, metrics_path=args.metrics)


def _train_cae(args, p, device):
    from .stages import train_cae

    train_cae.run(**train_cae.from_params(p, args), device=device, pool_path=args.pool, model_path=args.model,
                  history_path=args.history, metrics_path=args.metrics, progress=not args.quiet)


def _train_aae(args, p, device):
    from .stages import train_aae

    train_aae.run(**train_aae.from_params(p, args), pool_path=args.pool, cae_path=args.cae, device=device,
                  model_path=args.model, history_path=args.history, metrics_path=args.metrics,
                  progress=not args.quiet)


def _train_purifier(args, p, device):
    from .stages import train_purifier

    train_purifier.run(**train_purifier.from_params(p, args), pool_path=args.pool, victim_path=args.victim,
                       device=device, model_path=args.model, history_path=args.history, metrics_path=args.metrics,
                       progress=not args.quiet)


def _train_ssl(args, p, device):
    from .stages import train_ssl

    train_ssl.run(**train_ssl.from_params(p, args), pool_path=args.pool, victim_path=args.victim, device=device,
                  model_path=args.model, history_path=args.history, metrics_path=args.metrics,
                  progress=not args.quiet)


def _train_diffusion(args, p, device):
    from .stages import train_diffusion

    train_diffusion.run(**train_diffusion.from_params(p, args), pool_path=args.pool, device=device,
                        model_path=args.model, history_path=args.history, metrics_path=args.metrics,
                        progress=not args.quiet)


def _evaluate(args, p, device):
    from .stages import evaluate

    evaluate.run(**evaluate.from_params(p, args), pool_path=args.pool, adversarial_dir=args.adversarial,
                 victim_path=args.victim, models_dir=args.models, device=device, out_dir=args.out,
                 metrics_path=args.metrics)


def _adaptive(args, p, device):
    from .stages import adaptive

    adaptive.run(**adaptive.from_params(p, args), pool_path=args.pool, adversarial_dir=args.adversarial,
                 victim_path=args.victim, models_dir=args.models, device=device, out_path=args.out,
                 totals_path=args.totals)


def _adaptive_merge(args, p, device):
    from .stages import adaptive_merge

    adaptive_merge.run(**adaptive_merge.from_params(p, args), shards_dir=args.shards, out_path=args.out,
                       images_path=args.images, summary_path=args.summary, metrics_path=args.metrics)


def _tables(args, p, device):
    from .stages import tables

    tables.run(**tables.from_params(p, args), evaluated_dir=args.evaluated, adaptive_dir=args.adaptive,
               results_dir=args.results, metrics_path=args.metrics)


def _report(args, p, device):
    from .stages import report

    report.run(**report.from_params(p, args), params_path=args.params, results_dir=args.results,
               victim_path=args.victim, models_dir=args.models, device=device, figures_dir=args.figures,
               out_path=args.out)


def _device(p: dict, stage: str):
    """The torch device of ``p["device"]``, with torch using every CPU of this job's allocation
    (set once, here, for every stage that runs torch)."""
    if stage in ("plugins", "sample", "attack_merge", "adaptive_merge", "tables"):
        return None
    from .device import resolve, use_allocated_cpus

    use_allocated_cpus()
    return resolve(p["device"])


# stage -> the method families whose params entries it builds, checked at its start (params.check_methods;
# the Snakefile checks every family once per workflow)
BUILDS = {"victim_robust": ("attacks",), "attack": ("attacks",), "train_purifier": ("attacks", "purifiers"),
          "train_ssl": ("ssl",), "evaluate": ("defences",), "adaptive": ("defences", "adaptive"),
          "report": ("defences",)}
POOLS = ("--pools", "directory holding the pool files")
MODELS = ("--models", "directory holding the defences' models (cae/, aae/, purifiers/, ssl/, diffusion/, "
                      "victim_robust.pt)")
VICTIM = ("--victim", "victim state dict")
HISTORY = ("--history", "output CSV: per-epoch loss terms")
# stage -> (help, handler, its arguments: (flag, help) for a required path, (flag, argparse kwargs) otherwise)
STAGES = {
    "plugins": ("stamp the source files of the plugins and of a module victim (no torch)", _plugins, [
        ("--out", "directory of the stamps: defences/<name>.json, victim.json, <family>.json")]),
    "sample": ("draw the disjoint image pools into HDF5", _sample, [
        ("--out", "directory for <pool>.h5"), ("--metrics", "JSON with per-pool counts and checksums"),
        ("--workers", {"type": int, "default": len(os.sched_getaffinity(0)),
                       "help": "decoding processes (default: the CPUs this job may use; does not change the output)"})]),
    "victim": ("train or load the victim classifier", _victim, [
        POOLS, ("--model", "output state dict (.pt)"), ("--metrics", "output JSON: clean accuracy per labelled pool"),
        ("--history", "output CSV: per-epoch training loss and accuracy")]),
    "victim_robust": ("train the adversarially trained reference classifier", _victim_robust, [
        POOLS, ("--victim", "victim state dict (the start when robust_victim.init is victim)"), ("--model", "output model (.pt)"), ("--metrics", "output JSON: clean accuracy per labelled pool"),
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
    "train_diffusion": ("train the denoising diffusion model of the diffpure defences without labels",
                        _train_diffusion, [
        ("--pool", "the pool file of diffusion.pool"), ("--model", "output diffusion model (.pt)"), HISTORY,
        ("--metrics", "output JSON: the denoising loss before and after")]),
    "evaluate": ("one defence against every test column, both protocols", _evaluate, [
        ("--defence", "a key of evaluate.defences"), ("--pool", "the evaluated pool file"),
        ("--adversarial", "directory holding the pool's <attack>.h5 sets"),
        VICTIM, MODELS,
        ("--out", "output directory: <protocol>.csv of this defence"),
        ("--metrics", "output JSON: each row's accuracies and their average, per protocol")]),
    "adaptive": ("one shard of the adaptive attacks on one defence (through it), with sanity checks", _adaptive, [
        ("--defence", "a key of evaluate.defences"),
        ("--shard", {"type": int, "required": True, "help": "shard id, one of adaptive.shards"}),
        ("--pool", "the evaluated pool file"),
        ("--adversarial", "directory holding the pool's <attack>.h5 sets (the transfer images)"),
        VICTIM, MODELS, ("--out", "output CSV (gzip): the shard's records, one row per image, run and draw"),
        ("--totals", "output JSON: the shard's forward passes, timing and gradient norms")]),
    "adaptive_merge": ("one defence's adaptive rows from the records of its shards", _adaptive_merge, [
        ("--defence", "a key of evaluate.defences"), ("--shards", "directory holding shard-<k>.csv.gz and .json"),
        ("--out", "output CSV: this defence's rows"),
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
        params_mod.check_methods(p, BUILDS.get(args.stage, ()))
        args.func(args, p, _device(p, args.stage))
    except (params_mod.ParamsError, DataError, OSError, ValueError) as exc:  # OSError: files, full disks
        log.error("%s", exc)
        print(f"advrecover {args.stage}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
