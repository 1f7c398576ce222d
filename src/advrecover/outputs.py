"""The current DAG's outputs, and the files it no longer produces.

A file under :data:`MANAGED` that no stage of ``dvc.yaml`` writes with the current params (the
metrics of an attack removed from ``attack.run``, the models of a dropped variant, the temporary
files of a killed job) is stale: ``summary`` (what ``make run`` prints) never shows it, and
``make clean-stale`` lists and removes it. The resume state of a current output (an attack's
``.partial`` file, an adaptive shard's ``.partial`` directory of finished units, a trainer's
``.ckpt``) is kept.

    python -m advrecover.outputs summary
    python -m advrecover.outputs stale [--remove]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from . import dag, params as params_mod

MANAGED = ("data/pools", "data/adversarial", "data/adaptive", "models", "metrics", "results")
# Made by Makefile targets outside the DAG (`make report`, `make ablation-*`): never stale.
TARGETS = ("results/report.zip", "results/ablation-lambda.csv", "results/ablation-depth.csv")
REPORT = "results/report.html"


def current(root: Path) -> set[str]:
    """Every output path of every stage instance under the current params (relative to ``root``)."""
    params = params_mod.load(root / "params.yaml")
    return {t for stage in dag.load_stages(root / "dvc.yaml", params) for t in stage.targets}


def _resume_state(rel: str, outputs: set[str]) -> bool:
    path = Path(rel)
    partial = [p for p in (path, *path.parents) if p.suffix == ".partial"]
    return (bool(partial) and str(partial[0])[:-len(".partial")] in outputs) or \
        (path.suffix == ".ckpt" and str(path.with_suffix(".pt")) in outputs)


def stale(root: Path) -> list[str]:
    """Files under :data:`MANAGED` that the current DAG does not write, sorted."""
    outputs = current(root)
    found = [str(p.relative_to(root)) for d in MANAGED for p in (root / d).rglob("*") if p.is_file()]
    return sorted(r for r in found if r not in outputs and r not in TARGETS and not _resume_state(r, outputs))


def remove(root: Path, rels: list[str]) -> None:
    """Delete ``rels`` and the directories they leave empty."""
    for rel in rels:
        path = root / rel
        path.unlink()
        for parent in path.parents:
            if parent == root or any(parent.iterdir()):
                break
            parent.rmdir()


def summary(root: Path) -> str:
    """The victim, every current attack set and the accuracy tables, from current outputs only."""
    outputs = current(root)
    victim = root / "metrics/victim.json"
    lines = [f"victim clean accuracy: {json.loads(victim.read_text())['accuracy']}" if victim.exists() else "", ""]
    rows, missing = [], sorted(o for o in outputs if o.startswith(("metrics/", "results/")) and not (root / o).exists())
    for rel in sorted(o for o in outputs if o.startswith("metrics/attack/") and o not in missing):
        pool, attack = Path(rel).parent.name, Path(rel).stem
        rows.append({"pool": pool, "attack": attack, **json.loads((root / rel).read_text())})
    lines += [pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"), ""]
    for rel in sorted(o for o in outputs if o.startswith("results/") and o.endswith(".md") and o not in missing):
        first, second = (root / rel).read_text().split("\n## ", 2)[:2]
        lines.append(f"{first}\n## {second}")  # the title and the accuracy table
    if missing:
        lines.append("not produced yet: " + ", ".join(missing))
    if REPORT in outputs and REPORT not in missing:
        lines.append(f"report (every table, curve and image, self-contained): {(root / REPORT).resolve()}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m advrecover.outputs", description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["summary", "stale"])
    ap.add_argument("--remove", action="store_true", help="with stale: delete the files listed")
    ap.add_argument("--root", default=".", help="the repository (default: here)")
    args = ap.parse_args(argv)
    root = Path(args.root)
    try:
        if args.what == "summary":
            print(summary(root))
            return 0
        files = stale(root)
    except (params_mod.ParamsError, dag.DagError, OSError) as exc:
        print(f"advrecover.outputs: error: {exc}", file=sys.stderr)
        return 2
    for rel in files:
        print(("removed " if args.remove else "stale ") + rel)
    if args.remove:
        remove(root, files)
    elif not files:
        print("no stale outputs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
