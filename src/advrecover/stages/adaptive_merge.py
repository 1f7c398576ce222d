"""Stage ``adaptive_merge``: one defence's adaptive rows from the per-image records of its shards.

Every figure is computed here, from the records alone (no model runs), so a row does not depend on
how the images were sharded:

* per gradient route, the accuracy robust clean and to every attack through it (exact: in the
  cascade an image skipped by an attack was already broken on that route); ``gradient_free``:
  robust to every gradient attack and to Square; ``worst_case``: robust clean and to every run
  within the budget (transfer, every route and attack, the checks' runs at eps no larger than the
  threat's, the detection-aware PGD), with its mean over judgement draws beside it;
* the strongest route is the one of lowest accuracy; ``strongest`` names it with the attack that
  broke the most images on it. The sanity checks' figures and flags are those of that route, on
  the checks' subset; the gradient check covers every route;
* detection rates over the perturbed images in budget only; the joint success over the images
  robust clean. For the adaptive attack, each image's final image on the strongest route (the one
  that broke it, else the last attack's).

Writes ``results/adaptive/<defence>.csv`` (every accuracy with its exact 95% interval), the per-image
records with the worst case as a run of its own, the leaderboard summary and the metrics JSON.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .. import defences
from ..adaptive import checks
from ..adaptive import outcomes as O
from ..adaptive.routes import routes_for
from ..config import entry, section
from ..io import atomic_path, write_csv_gz, write_json
from .adaptive import AdaptiveConfig, budget, describe, subset

log = logging.getLogger(__name__)
TEXT = {"model": str, "threat": str, "kind": str, "route": str, "attack": str}


def read_shards(shards_dir: str | Path, n_shards: int) -> tuple[pd.DataFrame, list[dict]]:
    """The records of every shard, in shard order, and their totals; a missing shard is named."""
    frames, totals = [], []
    for k in range(n_shards):
        records, summary = Path(shards_dir) / f"shard-{k}.csv.gz", Path(shards_dir) / f"shard-{k}.json"
        for path in (records, summary):
            if not path.is_file():
                raise FileNotFoundError(f"shard missing: {path} (run its adaptive stage)")
        frames.append(pd.read_csv(records, keep_default_na=False, dtype=TEXT))
        totals.append(json.loads(summary.read_text()))
    return pd.concat(frames, ignore_index=True), totals


def of(runs: list[O.Run], kind: str, route: str | None = None) -> list[O.Run]:
    return [r for r in runs if r.kind == kind and (route is None or r.route == route)]


def final(runs: list[O.Run], clean: O.Run) -> O.Run:
    """Per image, the run of a route that broke it (else the last one): the route's final images."""
    pick = np.full(len(clean.ok), len(runs) - 1)
    for i in reversed(range(len(runs))):
        pick[clean.ok & ~runs[i].ok] = i
    rows = np.arange(len(pick))
    stack = lambda name: np.stack([getattr(r, name) for r in runs])[pick, rows]  # noqa: E731
    ok = np.stack([r.ok for r in runs])[pick, rows]
    return O.Run("final", runs[0].route, "final", runs[0].eps, stack("norms"), stack("inside"),
                 O.Judged(ok[:, None], np.full((len(ok), 1), -1)), stack("flagged"))


def detection(name: str, run: O.Run | None, clean_ok: np.ndarray) -> dict:
    """``dr_<name>``: share of the run's perturbed images in budget that the detector flags;
    ``joint_<name>``: share of the images robust clean that the run fools without being flagged."""
    if run is None:
        return {f"dr_{name}": float("nan"), f"joint_{name}": float("nan")}
    perturbed = run.inside & (run.norms > 0)
    return {f"dr_{name}": float(run.flagged[perturbed].mean()) if perturbed.any() else float("nan"),
            f"joint_{name}": float((~run.ok & ~run.flagged)[clean_ok].mean()) if clean_ok.any() else float("nan")}


def transfer_detection(runs: list[O.Run]) -> float:
    """Share of the perturbed transfer images in budget that the detector flags."""
    flags = np.concatenate([r.flagged[r.inside & (r.norms > 0)] for r in runs]) if runs else np.zeros(0, bool)
    return float(flags.mean()) if len(flags) else float("nan")


def strongest(runs: list[O.Run], clean: O.Run) -> tuple[str | None, dict, str]:
    """The route of lowest accuracy (the first on ties), every route's per-image outcome, and the
    attack that broke the most images on that route."""
    routes = {r.route: O.all_of(of(runs, "attack", r.route), clean) for r in of(runs, "attack")}
    if not routes:
        return None, {}, ""
    route = min(routes, key=lambda r: routes[r].mean())
    broke = [(int((clean.ok & ~r.ok).sum()), -i, r.attack) for i, r in enumerate(of(runs, "attack", route))]
    return route, routes, f"{max(broke)[2]} via {route}"


def check_figures(runs: list[O.Run], clean: O.Run, route: str, routes: dict, checked: np.ndarray,
                  gradients: dict, cfg: AdaptiveConfig, eps: float, shape: list[int], norm: str) -> tuple[dict, list[str]]:
    """The sanity checks' figures on their subset (``checked``) through the strongest ``route``, the
    gradient check of every route, and their flags."""
    c, ok = cfg.checks, clean.ok
    named = {r.attack: r for r in of(runs, "check", route)}
    sweep = [(ok & named[f"sweep_{m:g}"].ok)[checked] for m in sorted(c.eps_sweep)]
    doubled = {kind: (routes[route] & O.all_of([r for a, r in named.items() if a.endswith(" " + kind)], clean))[checked]
               for kind in ("doubled_steps", "doubled_eot") if any(a.endswith(" " + kind) for a in named)}
    mean = lambda a: round(float(a.mean()), 4) if len(a) else float("nan")  # noqa: E731
    reference = np.asarray(gradients.get("reference", []))
    flags = [checks.unbounded((ok & named["unbounded"].ok)[checked], c), checks.monotone(sweep, c),
             *[checks.converged(routes[route][checked], d, c) for d in doubled.values()],
             *[checks.gradient(r, np.asarray(gradients[r]), reference, c) for r in routes]]
    figures = {"check_n": int(checked.sum()), "check_unbounded": mean((ok & named["unbounded"].ok)[checked]),
               "check_unbounded_eps": round(checks.unbounded_eps(norm, tuple(shape)), 6),
               "check_eps_sweep": [mean(s) for s in sweep],
               "check_eps_sweep_eps": [round(m * eps, 6) for m in sorted(c.eps_sweep)],
               "check_strongest": mean(routes[route][checked]),
               "check_doubled_steps": mean(doubled["doubled_steps"]) if "doubled_steps" in doubled else float("nan"),
               "check_doubled_eot": mean(doubled["doubled_eot"]) if "doubled_eot" in doubled else float("nan"),
               "check_zero_gradient": {r: round(float(np.mean(np.asarray(gradients[r]) == 0)), 4) for r in routes},
               "check_gradient_ratio": {r: round(float(np.median(gradients[r]) / max(np.median(reference), 1e-30)), 6)
                                        for r in routes}}
    return {k: json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v for k, v in figures.items()}, flags


def threat_row(runs: list[O.Run], threat: dict, totals: dict, cfg: AdaptiveConfig, checked: np.ndarray | None,
               shape: list[int]) -> tuple[dict, O.Run]:
    """One row of the adaptive table from one (model, threat)'s runs, and its worst case as a run."""
    clean = of(runs, "clean")[0]
    transfer, attacks, free, aware = of(runs, "transfer"), of(runs, "attack"), of(runs, "gradient_free"), \
        of(runs, "detection_aware")[0]
    route, routes, top = strongest(runs, clean)
    in_budget = [r for r in runs if r.kind != "clean" and r.eps <= threat["eps"] + 1e-9]
    worst, transfer_ok = O.all_of(in_budget, clean), O.all_of(transfer, clean)
    figures, flags = check_figures(runs, clean, route, routes, checked, totals["gradients"], cfg, threat["eps"],
                                   shape, threat["norm"]) if checked is not None and route else ({}, [])
    flags = checks.weak_routes(routes, transfer_ok, cfg.checks) + \
        ([checks.gradient_free(O.all_of(attacks + free, clean), O.all_of(attacks, clean), cfg.checks)] if free else []) \
        + flags
    n = len(clean.ok)
    row = {"attacks": describe(cfg.attacks), **O.figure("clean", clean.ok),
           "clean_mean": float(clean.judged.correct.mean()), **O.figure("transfer", transfer_ok),
           **{k: v for r, ok in routes.items() for k, v in O.figure(f"route_{r}", ok).items()},
           **O.figure("gradient_free", O.all_of(attacks + free, clean) if free else np.zeros(0, dtype=bool)),
           **O.figure("worst_case", worst), "worst_case_mean": O.mean_over_draws(in_budget, clean),
           "strongest": top, "dr_transfer": transfer_detection(transfer),
           **detection("adaptive", final(of(runs, "attack", route), clean) if route else None, clean.ok),
           **detection("detection_aware", aware, clean.ok),
           **O.figure("detection_aware_accuracy", clean.ok & aware.ok),
           "flags": " ".join(f for f in flags if f), "checked": checked is not None, **figures,
           "forwards_per_image": round(totals["forwards"] / max(n, 1), 1)}
    return row, O.worst_case_run(worst, threat["eps"])


def leaderboard(defence: str, rows: list[dict]) -> dict:
    """The RobustBench-style summary of a defence: per attacked model and threat, the fields a
    leaderboard reads (robust accuracy = the adaptive worst case; reported = the transfer figure)."""
    return {"defence": defence, "entries": [
        {"model": r["model"], "threat_model": r["norm"], "eps": r["eps"], "n": r["n"], "draws": r["draws"],
         "clean_acc": r["clean"], "robust_acc": r["worst_case"], "robust_acc_ci": [r["worst_case_lo"], r["worst_case_hi"]],
         "robust_acc_mean_over_draws": r["worst_case_mean"], "reported": r["transfer"], "attacks": r["attacks"],
         "eot": r["eot"], "forward_passes_per_image": r["forwards_per_image"],
         "flags": r["flags"].split() if r["checked"] else ["not checked"] + r["flags"].split()} for r in rows]}


def from_params(p: dict, args) -> dict:
    """The values of ``run`` that come from the validated params (and this job's ``args``): the
    one translation, used by the CLI."""
    entry(p["evaluate"]["defences"], args.defence, "defence", "evaluate.defences")
    return {"defence": args.defence, "cfg": section(AdaptiveConfig, budget(p["adaptive"], args.defence)),
            "seed": p["seed"]}


def run(*, defence: str, cfg: AdaptiveConfig, seed: int, shards_dir: str | Path, out_path: str | Path,
        images_path: str | Path, summary_path: str | Path, metrics_path: str | Path) -> list[dict]:
    """Merge the shards of ``defence`` (``shards_dir``/shard-<k>.csv.gz and .json) into its rows,
    records and summaries."""
    frame, totals = read_shards(shards_dir, len(cfg.shards))
    rows, records = [], []
    for (model, threat_name), rec in frame.groupby(["model", "threat"], sort=False):
        runs, info = O.from_records(rec), totals[0]["models"][model]
        n, first = len(runs[0].ok), threat_name == next(iter(cfg.threats))
        checked = np.isin(np.arange(n), subset(np.arange(n), cfg.checks.n, seed)) if first else None
        merged = {"forwards": sum(t["models"][model]["threats"][threat_name]["forwards"] for t in totals),
                  "gradients": {r: sum((t["models"][model]["threats"][threat_name]["gradients"].get(r, [])
                                        for t in totals), [])
                                for t in totals for r in t["models"][model]["threats"][threat_name]["gradients"]}}
        threat = cfg.threats[threat_name]
        row, worst = threat_row(runs, threat, merged, cfg, checked, info["shape"])
        seconds = sum(t["models"][model]["wall_time_s"] for t in totals)
        rows.append({"defence": defence, "model": model, "classifier": info["classifier"], "threat": threat_name,
                     "norm": threat["norm"], "eps": threat["eps"], "n": n, "draws": info["draws"], "eot": info["eot"],
                     **row,
                     "seconds_per_100": round(100 * seconds / max(n * info["draws"], 1), 3)})
        images = rec.loc[rec["kind"] == "clean", "image"].to_numpy()[::info["draws"]]  # in shard order
        records.append(O.records([*runs, worst], images, model, threat_name))
    with atomic_path(out_path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.6f")
    write_csv_gz(images_path, pd.concat(records, ignore_index=True))
    write_json(summary_path, leaderboard(defence, rows))
    write_json(metrics_path, {"rows": rows})
    log.info("%s: %d rows from %d shard(s)", defence, len(rows), len(totals))
    return rows


def workload(p: dict, job) -> list:
    """No network runs here (records only): nothing for benchmarks/scale.py to cost."""
    return []
