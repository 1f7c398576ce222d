"""Stage ``report``: the figures under ``results/figures/`` and one self-contained ``results/report.html``.

The page shows the adaptive table (transfer and every gradient route side by side, flags), the
seen and unseen tables (Li, Angelov and Suri, Tables II/III) with each model's adaptive worst
case, robust accuracy against the budget, the image grid of their Fig. 7, every trainer's loss
curve, the ablations of their Fig. 4 and 5 when ``results/ablation-*.csv`` exist, and the
provenance of every input. Reads only what earlier stages wrote (and the models, to recover
the grid's few images); the figures are also DVC plots and ``snakemake --report`` items.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import defences as defence_registry
from .. import inference
from ..config import section
from ..data.adversarial import read_adversarial
from ..data.pools import read_pool
from ..data.tensors import to_tensor
from ..io import atomic_path, sha256_file
from ..models import victim as victims
from ..report import figures, grid, page, provenance
from .tables import ADAPTIVE_NOTE, PROTOCOL_TITLES, TITLES, label as row_label

log = logging.getLogger(__name__)
FIGURES = ("robust_accuracy", "grid", "training")
ABLATIONS = {"lambda": ("Fig. 4: lambda1 x lambda2", "make ablation-lambda", figures.ablation_lambda),
             "depth": ("Fig. 5: CAE and AAE depth", "make ablation-depth", figures.ablation_depth)}
TRAINERS = {"victim": "victim", "cae": "CAE (eq. 1)", "aae": "AAE (eq. 2-6)", "purifiers": "purifiers",
            "ssl": "self-supervised heads", "diffusion": "diffusion model (eq. 14)"}


@dataclass(frozen=True)
class ReportConfig:
    """``report``: the grid's number of seeded test ``images`` and the ``attack`` its defences recover."""

    images: int
    attack: str


@dataclass(frozen=True)
class Evaluated:
    """What was evaluated: the defences (name -> spec), the attack columns, the AAE training sets."""

    defences: dict
    columns: list
    train_on: list


def histories(p: dict, metrics_dir: str | Path) -> dict[str, dict[str, Path]]:
    """trainer -> run name -> history CSV, for every trainer the current params run."""
    m, rec = Path(metrics_dir), p["recovery"]
    sets = [*rec["train_on"], "mixed"]
    return {"victim": {"victim": m / "victim_train.csv", "victim_robust": m / "victim_robust_train.csv"},
            "cae": {v: m / "train/cae" / f"{v}.csv" for v in rec["variants"]},
            "aae": {f"{v}/{t}": m / "train/aae" / v / f"{t}.csv" for v in rec["variants"] for t in sets},
            "purifiers": {name: m / "train/purifiers" / f"{name}.csv" for name in p["purifiers"]},
            "ssl": {name: m / "train/ssl" / f"{name}.csv" for name in p["ssl"]["tasks"]},
            "diffusion": {"diffusion": m / "train/diffusion.csv"}}


def artifacts(p: dict, *, pools_dir, adversarial_dir, victim_path, models_dir) -> list[Path]:
    """Every pool, adversarial set, victim and model of the current params (the figures' inputs)."""
    models, rec = Path(models_dir), p["recovery"]
    return [*(Path(pools_dir) / f"{name}.h5" for name in p["sample"]["pools"]),
            *(Path(adversarial_dir) / pool / f"{a}.h5" for pool in p["attack"]["pools"] for a in p["attack"]["run"]),
            Path(victim_path), models / "victim_robust.pt",
            *(models / "cae" / f"{v}.pt" for v in rec["variants"]),
            *(models / "aae" / v / f"{t}.pt" for v in rec["variants"] for t in [*rec["train_on"], "mixed"]),
            *(models / "purifiers" / f"{name}.pt" for name in p["purifiers"]),
            *(models / "ssl" / f"{name}.pt" for name in p["ssl"]["tasks"]), models / "diffusion" / "diffusion.pt"]


def grid_figure(cfg: ReportConfig, evaluated: Evaluated, *, pool_path, adversarial_dir, victim, victim_path,
                models_dir, seed: int, device) -> bytes:
    """The image grid: seeded test images, every attack, every defence recovering ``cfg.attack``."""
    pool = read_pool(pool_path)
    rows = grid.rows(len(pool.labels), cfg.images, seed)
    attacked, victim_checksum = {}, sha256_file(victim_path)
    for a in evaluated.columns:
        s = read_adversarial(Path(adversarial_dir) / f"{a}.h5", victim_checksum, pool.attrs["checksum"])
        if not np.array_equal(s.pool_index[rows], rows):
            raise ValueError(f"{adversarial_dir}/{a}.h5: does not hold the whole pool in order; re-run its attack stages")
        attacked[a] = to_tensor(s.float_images[rows])
    built = {}
    for name, spec in evaluated.defences.items():
        per_attack = defence_registry.trained_on_attack(spec)
        train_set = (cfg.attack if cfg.attack in evaluated.train_on else "mixed") if per_attack else None
        built[name] = defence_registry.build(spec, models_dir, train_set, victim).to(device)
    cols = grid.columns(clean=to_tensor(pool.images[rows]), attacked=attacked, victim=victim, defences=built,
                        attack=cfg.attack, device=device, seed=seed)
    return figures.png(grid.figure(cols, pool.labels[rows], pool.class_names))


def protocol_tables(frame: pd.DataFrame, file: str, columns: list[str], adaptive: pd.DataFrame) -> tuple[dict, list]:
    """The accuracy table of one protocol with each model's adaptive worst case, and its other metrics' tables."""
    first = adaptive.drop_duplicates(["defence", "model"], keep="first")
    worst = {(r["defence"] + (f" ({r['model']})" if isinstance(r["model"], str) and r["model"] else "")):
             (i, r["worst_case"], r["flags"] if isinstance(r["flags"], str) else "") for i, r in first.iterrows()}
    order = ["clean", *columns]
    accuracy = page.protocol_table(frame, file, "accuracy", order, worst)
    others = [(TITLES[m], page.protocol_table(frame, file, m, order, {})) for m in TITLES if m != "accuracy"]
    return accuracy, others


def pair_tables(path: Path, adaptive: pd.DataFrame, labels: list[str]) -> list[dict]:
    """The matrix of paired comparisons of every threat model (stage ``tables``)."""
    pairs = pd.read_csv(path)
    return [page.pairs_table(pairs, threat, [lab for lab, t in zip(labels, adaptive["threat"]) if t == threat])
            for threat in dict.fromkeys(adaptive["threat"])]


def ablations(results_dir: Path) -> list[dict]:
    """The ablation figures whose CSV exists (seen average accuracy of the first CAE/AAE row), else how to make them."""
    out = []
    for key, (title, command, draw) in ABLATIONS.items():
        csv = results_dir / f"ablation-{key}.csv"
        entry = {"title": title, "command": command, "csv": str(csv), "png": None}
        if csv.is_file():
            table = pd.read_csv(csv)
            value = next((c for c in table.columns if c.startswith("seen.cae_aae") and c.endswith(".average")), None)
            if value is None:
                raise ValueError(f"{csv}: no seen.cae_aae*.average column (written by python -m advrecover.ablation?)")
            entry["png"] = figures.png(draw(table, value))
        out.append(entry)
    return out


def from_params(p: dict, args) -> dict:
    """The values of ``run`` that come from the validated params (and this job's ``args``): the
    one translation, used by the CLI."""
    pool = p["evaluate"]["pool"]
    return {"cfg": section(ReportConfig, p["report"]),
            "evaluated": Evaluated(defences=p["evaluate"]["defences"], columns=p["attack"]["run"],
                                   train_on=p["recovery"]["train_on"]),
            "histories": histories(p, args.histories),
            "artifacts": artifacts(p, pools_dir=args.pools, adversarial_dir=args.adversarial, victim_path=args.victim,
                                   models_dir=args.models),
            "pool_path": Path(args.pools) / f"{pool}.h5", "adversarial_dir": Path(args.adversarial) / pool,
            "victim_cfg": section(victims.VictimConfig, p["victim"]), "seed": p["seed"]}


def run(*, cfg: ReportConfig, evaluated: Evaluated, histories: dict, artifacts: list[Path], params_path,
        results_dir, pool_path, adversarial_dir, victim_path, victim_cfg, models_dir, seed: int, device,
        figures_dir, out_path) -> dict[str, bytes]:
    """Draw the figures, write them and the page; returns the figures' PNG bytes by name."""
    results = Path(results_dir)
    tables = {name: pd.read_csv(results / f"{name}.csv", keep_default_na=False, na_values=[""])
              for name in ("seen", "unseen", "adaptive")}
    labels = [row_label(r) for _, r in tables["adaptive"].iterrows()]
    victim = inference.prepare(victims.load(victim_path, victim_cfg), device)
    missing = [str(path) for runs in histories.values() for path in runs.values() if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"training histories missing (run their training stages): {missing}")
    drawn = {"robust_accuracy": figures.png(figures.robust_accuracy(tables["adaptive"], labels)),
             "grid": grid_figure(cfg, evaluated, pool_path=pool_path, adversarial_dir=adversarial_dir, victim=victim,
                                 victim_path=victim_path, models_dir=models_dir, seed=seed, device=device),
             "training": figures.png(figures.training(
                 {TRAINERS[t]: {n: pd.read_csv(path) for n, path in runs.items()} for t, runs in histories.items()}))}
    for name, data in drawn.items():
        with atomic_path(Path(figures_dir) / f"{name}.png") as tmp:
            tmp.write_bytes(data)
    protocols = []
    for name in ("seen", "unseen"):
        accuracy, others = protocol_tables(tables[name], f"{name}.csv", evaluated.columns, tables["adaptive"])
        protocols.append({"name": name, "title": PROTOCOL_TITLES[name], "accuracy": accuracy, "others": others})
    html = page.render(
        params_file=str(params_path), revision=provenance.revision(),
        adaptive_note=ADAPTIVE_NOTE + " (seconds_per_100, a timing, is in results/adaptive.md only.)",
        adaptive=page.adaptive_table(tables["adaptive"], labels), protocols=protocols, figures=drawn,
        pairs=pair_tables(results / "adaptive_pairs.csv", tables["adaptive"], labels),
        grid_note=f"Rows: {cfg.images} seeded test images. Columns: the clean image, each attack's image, then each "
                  f"defence's recovery of the {cfg.attack} image. Under each cell the answer of the classifier behind "
                  f"the column (green: the label, red: wrong).",
        ablations=ablations(results), versions=provenance.versions(),
        artifacts=provenance.checksums(artifacts, {p for p in artifacts if Path(adversarial_dir).parent in p.parents}),
        params_text=Path(params_path).read_text())
    with atomic_path(out_path) as tmp:
        tmp.write_text(html)
    log.info("wrote %s (%d kB) and %d figures", out_path, len(html) // 1024, len(drawn))
    return drawn


def workload(p: dict, job) -> list:
    """Draws figures and recovers a handful of grid images: nothing for benchmarks/scale.py to cost."""
    return []
