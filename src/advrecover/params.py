"""Load ``params.yaml`` and check it against the JSON schema before any work starts.

Only the CLI calls this: stage code receives plain values, never the params file.
The schema lives in ``workflow/schemas/params.schema.yaml`` (shipped in the package through a
symlink) so that the Snakefile's ``snakemake.utils.validate`` and the CLI enforce one contract.

Presets (``configs/paper.yaml``, ``configs/tiny.yaml``) are overlays on ``params.yaml``: only what
differs. :func:`merge` applies one (mappings merge key by key; lists and scalars replace; ``!drop``
removes a key; ``!replace`` takes a mapping as it is, e.g. where its order matters), and ``python -m advrecover.params preset configs/paper.yaml`` writes the merged,
complete file as ``params.yaml``, the one file DVC and Snakemake read:

    python -m advrecover.params preset configs/paper.yaml    # params.yaml becomes the paper preset
    git checkout params.yaml                                  # back to the quick profile
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import yaml


class ParamsError(ValueError):
    """params.yaml is missing, unreadable, or does not match the schema."""


def schema() -> dict:
    """The params JSON schema, as a dict."""
    text = resources.files("advrecover").joinpath("schemas/params.schema.yaml").read_text()
    return yaml.safe_load(text)


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def describe(error: jsonschema.ValidationError) -> str:
    """One line naming the offending key and what the schema expected there."""
    where = _key(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"{where}: unknown key(s) {', '.join(map(repr, extra))}; allowed: {', '.join(allowed)}"
    if error.validator == "required":
        missing = error.message.split("'")[1]
        return f"{_key([*error.absolute_path, missing])}: required key is missing"
    return f"{where}: {error.message}"


def validate(params: dict, source: str = "params") -> dict:
    """Raise :class:`ParamsError` listing every schema violation (each naming its key)."""
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(params), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n".join(f"  - {describe(e)}" for e in errors)
        raise ParamsError(f"{source} is invalid:\n{lines}")
    return params


def cross_check(params: dict) -> None:
    """Constraints between keys that a JSON schema cannot express."""
    attack = params["attack"]
    unknown = [name for name in attack["run"] if name not in attack["instances"]]
    if unknown:
        raise ParamsError(f"attack.run: {unknown} are not defined under attack.instances "
                          f"(defined: {sorted(attack['instances'])})")
    for where, shards in (("attack.shards", attack["shards"]), ("adaptive.shards", params["adaptive"]["shards"])):
        if sorted(shards) != list(range(len(shards))):
            raise ParamsError(f"{where}: must be the shard ids 0..K-1, got {shards}")
    victim = params["victim"]
    if victim["mode"] == "module" and not (victim["module"] and victim["checkpoint"]):
        raise ParamsError("victim.mode: module needs victim.module (an import path 'package.module:callable') and "
                          "victim.checkpoint (a local state-dict file)")
    if params["report"]["attack"] not in attack["run"]:
        raise ParamsError(f"report.attack: {params['report']['attack']!r} is not in attack.run {attack['run']}")
    _check_recovery(params)


def _check_recovery(params: dict) -> None:
    rec, attack, size = params["recovery"], params["attack"], params["sample"]["image_size"]
    if "aae" not in attack["pools"]:
        raise ParamsError("attack.pools: must include 'aae' (the AAE trains on attacked aae images)")
    if params["evaluate"]["pool"] not in attack["pools"]:
        raise ParamsError(f"evaluate.pool: {params['evaluate']['pool']!r} is not attacked (attack.pools: {attack['pools']})")
    unknown = [a for a in rec["train_on"] if a not in attack["run"]]
    if unknown:
        raise ParamsError(f"recovery.train_on: {unknown} are not in attack.run {attack['run']}")
    for v in rec["variants"]:
        for part in ("cae", "aae"):
            if v not in rec[part]:
                raise ParamsError(f"recovery.{part}.{v}: missing; every variant in recovery.variants needs one")
        cae, aae = rec["cae"][v], rec["aae"][v]
        if cae["layout"] == "patches" and size % cae["patch"]:
            raise ParamsError(f"recovery.cae.{v}.patch: {cae['patch']} does not divide sample.image_size {size}")
        if aae["widths"][-1] != cae["widths"][-1]:
            raise ParamsError(f"recovery.aae.{v}.widths: must end in the CAE's latent channels {cae['widths'][-1]} "
                              f"(D_CAE decodes E_AAE's latent), got {aae['widths'][-1]}")
        if cae["stride"] ** len(cae["widths"]) != aae["stride"] ** len(aae["widths"]):
            raise ParamsError(f"recovery.aae.{v}: stride**depth must equal the CAE's so the latent lengths match")
        if aae["init_from_cae"] and [aae[k] for k in ("widths", "kernel", "stride")] != \
                [cae[k] for k in ("widths", "kernel", "stride")]:
            raise ParamsError(f"recovery.aae.{v}.init_from_cae: needs widths, kernel and stride equal to the CAE's")
    _check_evaluation(params)


def _check_evaluation(params: dict) -> None:
    rec, defences = params["recovery"], params["evaluate"]["defences"]
    if not any(spec["method"] == "none" for spec in defences.values()):
        raise ParamsError("evaluate.defences: needs an entry with method none (the victim alone, every table's reference)")
    unknown = [t for t in params["adaptive"]["train_sets"] if t != "mixed" and t not in rec["train_on"]]
    if unknown:
        raise ParamsError(f"adaptive.train_sets: {unknown} are neither 'mixed' nor in recovery.train_on {rec['train_on']}")
    for name, spec in params["purifiers"].items():
        if spec["train"]["attack"] not in params["attack"]["instances"]:
            raise ParamsError(f"purifiers.{name}.train.attack: {spec['train']['attack']!r} is not defined under "
                              f"attack.instances")
    for name, spec in defences.items():
        if "purifier" in spec and spec["purifier"] not in params["purifiers"]:
            raise ParamsError(f"evaluate.defences.{name}.purifier: {spec['purifier']!r} is not under purifiers "
                              f"{sorted(params['purifiers'])}")
        if "variant" in spec and spec["variant"] not in rec["variants"]:
            raise ParamsError(f"evaluate.defences.{name}.variant: {spec['variant']!r} is not in recovery.variants "
                              f"{rec['variants']}")
    _check_self_supervision(params)


FAMILIES = ("attacks", "purifiers", "ssl", "defences", "adaptive")


def check_methods(params: dict, families=FAMILIES) -> None:
    """Every entry of the registry sections of ``families`` names a known method with parameters
    its builder takes (the message names the params key). It imports each family's modules (torch
    and more), so :func:`load` leaves it out: the Snakefile checks every family once per workflow
    (so ``snakemake -n`` reports it) and each stage the families it builds (cli.BUILDS)."""
    import importlib

    try:
        for family in families:
            _CHECKS[family](params, importlib.import_module(f"advrecover.{family}"))
    except ValueError as exc:
        raise ParamsError(str(exc)) from exc


def _check_attacks(params: dict, attacks) -> None:
    attacks.check(params["attack"]["instances"])
    attacks.check({"attack": params["robust_victim"]["attack"]}, "robust_victim")


def _check_purifiers(params: dict, purifiers) -> None:
    from . import attacks

    purifiers.check(params["purifiers"])
    for name, spec in params["purifiers"].items():
        instance = spec["train"]["attack"]
        if params["attack"]["instances"][instance]["method"] not in attacks.label_free():
            raise ValueError(f"purifiers.{name}.train.attack: {instance!r} needs labels; the purifiers train "
                             f"without labels (an instance of a label-free method: {attacks.label_free()})")


def _check_adaptive(params: dict, adaptive) -> None:
    adaptive.check(params["adaptive"]["attacks"])
    for name, override in params["adaptive"]["per_defence"].items():
        adaptive.check(override.get("attacks") or {}, f"adaptive.per_defence.{name}.attacks")


_CHECKS = {"attacks": _check_attacks, "purifiers": _check_purifiers,
          "ssl": lambda params, ssl: ssl.check(params["ssl"]["tasks"]),
          "defences": lambda params, defences: defences.check(params["evaluate"]["defences"]),
          "adaptive": _check_adaptive}


def _check_self_supervision(params: dict) -> None:
    defences, tasks = params["evaluate"]["defences"], params["ssl"]["tasks"]
    for name, spec in defences.items():
        unknown = [t for t in spec.get("tasks") or {} if spec["method"] == "reversal" and t not in tasks]
        if unknown:
            raise ParamsError(f"evaluate.defences.{name}.tasks: {unknown} are not heads under ssl.tasks {sorted(tasks)}")
    unknown = [d for d in params["adaptive"]["per_defence"] if d not in defences]
    if unknown:
        raise ParamsError(f"adaptive.per_defence: {unknown} are not defences of evaluate.defences {sorted(defences)}")
    _check_diffusion(params)


def _check_diffusion(params: dict) -> None:
    """A trained diffusion model denoises only the timesteps 1..t_max it saw; the widths must split into
    its GroupNorm groups."""
    d = params["diffusion"]
    if any(w % d["model"]["groups"] for w in d["model"]["widths"]):
        raise ParamsError(f"diffusion.model.groups: {d['model']['groups']} must divide every width {d['model']['widths']}")
    if d["train"]["t_max"] >= d["model"]["timesteps"]:
        raise ParamsError(f"diffusion.train.t_max: {d['train']['t_max']} must be below diffusion.model.timesteps "
                          f"{d['model']['timesteps']}")
    for name, spec in params["evaluate"]["defences"].items():
        if spec["method"] == "diffpure" and not d["pretrained"] and spec.get("t_star", 0) > d["train"]["t_max"]:
            raise ParamsError(f"evaluate.defences.{name}.t_star: {spec['t_star']} is beyond the timesteps "
                              f"the diffusion model is trained on (diffusion.train.t_max: {d['train']['t_max']})")


def check_paths(params: dict) -> None:
    """Every dataset path of ``sample.pools`` exists (a directory, or a file for ``hdf5``), so a
    typo stops a run before any work, naming the parameter. Only where pools are to be drawn:
    a user who pulled the pools from a DVC remote needs no raw datasets."""
    for name, cfg in params["sample"]["pools"].items():
        if cfg["source"] == "builtin" or cfg.get("download"):
            continue
        path, want = Path(cfg["path"]), "file" if cfg["source"] == "hdf5" else "directory"
        if not (path.is_file() if want == "file" else path.is_dir()):
            raise ParamsError(f"sample.pools.{name}.path: {want} not found: {path}")


class Drop:
    """``!drop`` in an overlay: remove this key from the base."""


@dataclasses.dataclass(frozen=True)
class Replace:
    """``!replace`` on an overlay's mapping: take it as it is (its keys and their order), unmerged."""
    value: dict


class OverlayLoader(yaml.SafeLoader):
    """YAML of a preset overlay: safe YAML plus the ``!drop`` and ``!replace`` tags."""


OverlayLoader.add_constructor("!drop", lambda loader, node: Drop())
OverlayLoader.add_constructor("!replace", lambda loader, node: Replace(loader.construct_mapping(node, deep=True)))
PRESET_MARK = "# preset: "


def merge(base: dict, overlay: dict) -> dict:
    """``base`` with ``overlay`` applied: mappings merge key by key (the base's order, new keys
    last), ``!drop`` removes a key, ``!replace`` and anything else replace the base's value.
    Neither argument is changed."""
    return _apply(copy.deepcopy(base), copy.deepcopy(overlay), "")


def _apply(out: dict, overlay: dict, where: str) -> dict:
    for key, value in overlay.items():
        if isinstance(value, Drop):
            if key not in out:
                raise ParamsError(f"{where}{key}: !drop of a key the base does not have")
            del out[key]
        elif isinstance(value, Replace):
            out[key] = value.value
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            _apply(out[key], value, f"{where}{key}.")
        else:
            out[key] = value
    return out


def preset(overlay_path: str | Path, base_path: str | Path = "params.yaml") -> tuple[dict, str]:
    """The params of a preset overlay on the base file (refused when the base is itself a merged
    preset), and the text of the complete file."""
    base_text = Path(base_path).read_text()
    if base_text.startswith(PRESET_MARK):
        raise ParamsError(f"{base_path} is already a merged preset ({base_text.splitlines()[0][2:]}); "
                          f"restore the quick profile first (git checkout {base_path})")
    overlay = yaml.load(Path(overlay_path).read_text(), Loader=OverlayLoader) or {}
    merged = merge(yaml.safe_load(base_text), overlay)
    validate(merged, f"{base_path} + {overlay_path}")
    cross_check(merged)
    check_methods(merged)
    header = (f"{PRESET_MARK}{overlay_path} merged onto the quick profile by "
              f"`python -m advrecover.params preset {overlay_path}`;\n# edit the overlay, not this file "
              f"(git checkout {base_path} restores the quick profile).\n")
    return merged, header + yaml.safe_dump(merged, sort_keys=False, width=110)


def read(path: str | Path) -> dict:
    """A complete params file, or a preset overlay (a file under a ``configs/`` directory) merged
    onto the ``params.yaml`` beside that directory: what the benchmarks and tests accept."""
    path = Path(path)
    if path.resolve().parent.name == "configs":
        return preset(path, path.resolve().parent.parent / "params.yaml")[0]
    return load(path)


def load(path: str | Path = "params.yaml") -> dict:
    """Read and validate a params file."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file not found: {path}")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(params, dict):
        raise ParamsError(f"{path} must hold a mapping of parameters, got {type(params).__name__}")
    validate(params, str(path))
    cross_check(params)
    return params


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m advrecover.params", description="apply a preset overlay")
    sub = ap.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("preset", help="write params.yaml merged with a preset overlay (configs/*.yaml)")
    cmd.add_argument("overlay")
    cmd.add_argument("--base", default="params.yaml", help="the quick profile (default: params.yaml)")
    cmd.add_argument("--out", default="params.yaml", help="the merged file (default: params.yaml)")
    args = ap.parse_args(argv)
    try:
        _, text = preset(args.overlay, args.base)
    except (ParamsError, OSError) as exc:
        print(f"advrecover.params: error: {exc}", file=sys.stderr)
        return 2
    from .io import atomic_path

    with atomic_path(Path(args.out)) as tmp:
        tmp.write_text(text)
    print(f"wrote {args.out}: {args.overlay} merged onto {args.base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
