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


def _sample(args, p):
    from .stages import sample

    sample.run(p["sample"]["pools"], p["sample"]["image_size"], p["seed"], p["sample"]["max_bad_fraction"],
               args.out, args.metrics, workers=args.workers, progress=not args.quiet)


def _victim(args, p):
    from .device import resolve, use_allocated_cpus
    from .stages import victim

    use_allocated_cpus()
    metrics = victim.run(p["victim"], p["seed"], resolve(p["device"]), args.pools, args.model, args.metrics,
                         args.history, progress=not args.quiet)
    log.info("victim clean accuracy: %s", metrics["accuracy"])


def _attack(args, p):
    from . import attacks
    from .device import resolve, use_allocated_cpus
    from .stages import attack

    a = p["attack"]
    if args.attack not in a["instances"]:
        raise ValueError(f"--attack {args.attack}: not defined under attack.instances")
    attacks.check(a["instances"])
    use_allocated_cpus()
    attack.run(args.attack, a["instances"][args.attack], args.pool, Path(args.pools) / f"{args.pool}.h5", args.victim,
               p["victim"], args.shard, len(a["shards"]), a["batch_size"], a["dtype"], p["seed"], resolve(p["device"]),
               args.out, compression=a["compression"], use_labels=args.pool in a["label_pools"],
               progress=not args.quiet)


def _attack_merge(args, p):
    from .stages import attack_merge

    shards = [Path(args.shards) / f"shard-{k}.h5" for k in range(len(p["attack"]["shards"]))]
    attack_merge.run(shards, args.out, args.metrics)


def _train_cae(args, p):
    from .device import resolve, use_allocated_cpus
    from .stages import train_cae

    use_allocated_cpus()
    train_cae.run(_variant(p, "cae", args.variant), p["seed"], resolve(p["device"]), args.pool, args.model,
                  args.history, args.metrics, progress=not args.quiet)


def _train_aae(args, p):
    from .device import resolve, use_allocated_cpus
    from .stages import train_aae

    train_on = p["recovery"]["train_on"]
    if args.train_set != "mixed" and args.train_set not in train_on:
        raise ValueError(f"--train-set {args.train_set}: not in recovery.train_on {train_on} (or 'mixed')")
    names = train_on if args.train_set == "mixed" else [args.train_set]
    use_allocated_cpus()
    train_aae.run(_variant(p, "aae", args.variant), args.train_set, {a: Path(args.sets) / f"{a}.h5" for a in names},
                  args.pool, args.cae, p["seed"], resolve(p["device"]), args.model, args.history, args.metrics,
                  progress=not args.quiet)


def _evaluate(args, p):
    from .device import resolve, use_allocated_cpus
    from .stages import evaluate

    e = p["evaluate"]
    use_allocated_cpus()
    evaluate.run(e["defences"], p["attack"]["run"], p["recovery"]["train_on"], args.pool, args.adversarial, args.victim,
                 p["victim"], args.models, e["tau"], e["batch_size"], p["seed"], resolve(p["device"]), args.results,
                 args.metrics)


def _variant(p: dict, part: str, variant: str) -> dict:
    if variant not in p["recovery"]["variants"]:
        raise ValueError(f"--variant {variant}: not in recovery.variants {p['recovery']['variants']}")
    return p["recovery"][part][variant]


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="advrecover", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    common.add_argument("--log", help="also append log lines to this file")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = ap.add_subparsers(dest="stage", required=True, metavar="STAGE")

    s = sub.add_parser("sample", parents=[common], help="draw the disjoint image pools into HDF5")
    s.add_argument("--out", required=True, help="directory for <pool>.h5")
    s.add_argument("--metrics", required=True, help="JSON with per-pool counts and checksums")
    s.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                   help="decoding processes (default: the CPUs this job may use; does not change the output)")
    s.set_defaults(func=_sample)

    v = sub.add_parser("victim", parents=[common], help="train or load the victim classifier")
    v.add_argument("--pools", required=True, help="directory holding the pool files")
    v.add_argument("--model", required=True, help="output state dict (.pt)")
    v.add_argument("--metrics", required=True, help="output JSON: clean accuracy per labelled pool")
    v.add_argument("--history", required=True, help="output CSV: per-epoch training loss and accuracy")
    v.set_defaults(func=_victim)

    a = sub.add_parser("attack", parents=[common], help="one shard of one attack on one pool, into HDF5")
    a.add_argument("--pool", required=True, help="pool name (a key of sample.pools)")
    a.add_argument("--attack", required=True, help="instance name (a key of attack.instances)")
    a.add_argument("--shard", type=int, required=True, help="shard id, one of attack.shards")
    a.add_argument("--pools", required=True, help="directory holding the pool files")
    a.add_argument("--victim", required=True, help="victim state dict")
    a.add_argument("--out", required=True, help="output shard file (.h5)")
    a.set_defaults(func=_attack)

    m = sub.add_parser("attack_merge", parents=[common], help="merge the shards of one (pool, attack)")
    m.add_argument("--shards", required=True, help="directory holding shard-<k>.h5")
    m.add_argument("--out", required=True, help="output set (.h5)")
    m.add_argument("--metrics", required=True, help="output JSON: success rate, accuracies, norms")
    m.set_defaults(func=_attack_merge)

    c = sub.add_parser("train_cae", parents=[common], help="train the clean-image VAE of one recovery variant")
    c.add_argument("--variant", required=True, help="one of recovery.variants")
    c.add_argument("--pool", required=True, help="the cae pool file")
    c.add_argument("--model", required=True, help="output model (.pt)")
    c.add_argument("--history", required=True, help="output CSV: per-epoch loss terms")
    c.add_argument("--metrics", required=True, help="output JSON: reconstruction PSNR")
    c.set_defaults(func=_train_cae)

    t = sub.add_parser("train_aae", parents=[common], help="train the AAE of one variant on one training set")
    t.add_argument("--variant", required=True, help="one of recovery.variants")
    t.add_argument("--train-set", required=True, help="an attack of recovery.train_on, or mixed")
    t.add_argument("--pool", required=True, help="the aae pool file (its checksum must match the sets')")
    t.add_argument("--sets", required=True, help="directory holding <attack>.h5 adversarial sets of the aae pool")
    t.add_argument("--cae", required=True, help="the trained CAE of the variant (kept frozen)")
    t.add_argument("--model", required=True, help="output model (.pt)")
    t.add_argument("--history", required=True, help="output CSV: per-epoch loss terms")
    t.add_argument("--metrics", required=True, help="output JSON: PSNR of the recovery to its input")
    t.set_defaults(func=_train_aae)

    e = sub.add_parser("evaluate", parents=[common], help="every defence against every test column")
    e.add_argument("--pool", required=True, help="the evaluated pool file")
    e.add_argument("--adversarial", required=True, help="directory holding the pool's <attack>.h5 sets")
    e.add_argument("--victim", required=True, help="victim state dict")
    e.add_argument("--models", required=True, help="directory holding cae/ and aae/ models")
    e.add_argument("--results", required=True, help="output directory: <protocol>.csv and <protocol>.md")
    e.add_argument("--metrics", required=True, help="output JSON: accuracy per defence and column")
    e.set_defaults(func=_evaluate)
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    handlers = [logging.StreamHandler(sys.stderr)]
    if args.log:
        Path(args.log).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(args.log, mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        handlers=handlers, force=True)
    try:
        p = params_mod.load(args.params)
        args.func(args, p)
    except (params_mod.ParamsError, DataError, OSError, ValueError) as exc:  # OSError: files, full disks
        log.error("%s", exc)
        print(f"advrecover {args.stage}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
