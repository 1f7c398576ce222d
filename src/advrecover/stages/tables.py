"""Stage ``tables``: assemble every defence's rows into the tables a reader opens.

Reads ``results/defences/<defence>/<protocol>.csv`` (stage ``evaluate``) and
``results/adaptive/<defence>.csv`` with its per-image records (stage ``adaptive``), in the order
of ``evaluate.defences``, and writes ``results/{seen,unseen,adaptive}.{csv,md}``,
``results/adaptive_pairs.csv`` and ``metrics/evaluate.json``. A defence enters the transfer
tables and the adaptive table together: both inputs are required for each. The ``none`` row is
the victim alone, the reference of every column: each adaptive row's worst case is compared with
it on the images both were attacked on, by the exact McNemar test (``vs_none``), and every pair
of rows under one threat model likewise (``adaptive_pairs.csv``, the report's matrix).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from .. import metrics as M
from ..io import atomic_path, write_json

CLEAN, PROTOCOLS, AVERAGE = M.CLEAN, M.PROTOCOLS, M.AVERAGE
PROTOCOL_TITLES = {
    "seen": "Seen attacks (the AAE trained on the column's attack; Li, Angelov and Suri, Table II)",
    "unseen": "Unseen attacks (the AAE trained on another attack, drawn with the seed; Li, Angelov and Suri, Table III)"}
TITLES = {"accuracy": "Victim accuracy on recovered images (%)",
          "recovery_rate": "Recovery rate: correct after recovery among correct when clean (%)",
          "recovery_ratio": "Recovery ratio: pixels within tau of the clean image (%)",
          "psnr": "PSNR of the recovered to the clean image (dB)",
          "ssim": "SSIM of the recovered to the clean image",
          "psnr_to_input": "PSNR of the recovered image to the defence's input (dB; high = identity map)",
          "detection_rate": "Detection rate: inputs flagged by ||x - recover(x)||_2 at the threshold calibrated "
                            "on clean held-out images (%; on Clean: the false-positive rate)"}
PERCENT = (*M.ACCURACIES, "recovery_ratio", "detection_rate")
VICTIM_ALONE = "none"
OWN = " (own classifier)"
OWN_NOTE = ("Rows marked 'own classifier' answer with their own classifier (adversarially trained) and no recovery "
            "step; their attack columns hold the same images as every row, made against the standard victim "
            "(transfer). The adaptive table attacks that classifier directly.\n")


def _wide(frame: pd.DataFrame, values: str, order: list[str]) -> pd.DataFrame:
    wide = frame.pivot(index="defence", columns="column", values=values)
    wide = wide.reindex(columns=[c for c in order if c in wide.columns])
    return wide.reindex(index=list(dict.fromkeys(frame["defence"])))


def markdown(frame: pd.DataFrame, columns: list[str], title: str) -> str:
    """One table per metric in the shape of Li et al.'s Tables II and III: rows = defences,
    columns = Clean, the attacks, Average.
    Accuracies read ``value [low, high]``, their 95% interval (:func:`advrecover.metrics.interval`);
    Average has none."""
    order = [CLEAN, *columns]
    note = ("Accuracies: value [95% interval] over the evaluated images: exact (Clopper-Pearson) where each image "
            "counts 0 or 1, percentile bootstrap where a cell averages several models (a per-attack defence's "
            "Clean); Average has none. Only "
            "per-attack models (cae_aae) differ between the seen and unseen tables; every other row (the purifiers, "
            "the transformations, the reversals) does not depend on an attack set and is the same in both.\n")
    own = frame["classifier"].eq("own") if "classifier" in frame else pd.Series(False, index=frame.index)
    if own.any():
        frame = frame.assign(defence=frame["defence"].where(~own, frame["defence"] + OWN))
        note += OWN_NOTE
    parts = [f"# {title}\n", note]
    for field, caption in TITLES.items():
        scale = 100 if field in PERCENT else 1
        fmt = "{:.3f}" if field == "ssim" else "{:.1f}"
        wide = _wide(frame, field, order) * scale
        average = wide.mean(axis=1)
        cells = wide.map(fmt.format)
        if field in M.ACCURACIES:
            low, high = (_wide(frame, f"{field}_ci_{end}", order) * scale for end in ("low", "high"))
            cells = cells + " [" + low.map(fmt.format) + ", " + high.map(fmt.format) + "]"
        cells[AVERAGE] = average.map(fmt.format)
        cells.columns = ["Clean" if c == CLEAN else ("Average" if c == AVERAGE else c) for c in cells.columns]
        align = ("left", *["right"] * len(cells.columns))
        parts.append(f"## {caption}\n\n{cells.to_markdown(disable_numparse=True, colalign=align)}\n")
    return "\n".join(parts)


ADAPTIVE_NOTE = """Every figure is an accuracy (%) on a seeded subset of the evaluated pool (n images, outside the
detector's calibration split), with its exact 95% (Clopper-Pearson) interval in brackets.
Transfer: the stored attacks made against the bare victim, those within the budget. Routes: full
= exact gradient through the defence; bpda = the defence forward, identity backward (Athalye et
al. 2018); bpda_surrogate = the defence's own differentiable approximation backward. Each route
runs every gradient attack of the row's `attacks` column in turn (EOT over the defence's
randomness where it has any), each on the images the earlier ones left robust (the cascade); its
figure counts an image robust only if it survives all of them. square: every
gradient attack, then the gradient-free Square attack through the defence's real forward pass on
the images they left robust (AutoAttack's order). A random defence (draws >
1) answers every image in that many fresh draws, and an image counts as robust only if every
draw is right; mean_draws is the accuracy of one draw, averaged. Worst case: robust clean and
under every run within the budget (transfer, every route and attack, Square, the checks' runs at
eps no larger than the threat's, the detection-aware PGD). vs none: the worst case minus the
victim alone's on the images both were attacked on (points), with the exact McNemar p-value;
* marks a difference significant at 5%, and a difference without it is not a ranking. Flags: the
sanity checks that failed (none = all passed). seconds_per_100: wall time of one defended answer
(recovery and classification) per 100 images on the machine that ran the job, a timing that
differs from run to run; forwards: forward passes of the defended model per image that the row
spent. A defence may have a budget of its own (adaptive.per_defence): its n, eot and attacks
columns say so. The `none` row is the victim alone; a row marked 'own classifier' is attacked
through its own (adversarially trained) classifier, its transfer images are those made against
the standard victim.
"""
INTERVALS = ("clean", "transfer", "gradient_free", "worst_case")  # with the route_* columns


def label(row) -> str:
    """The adaptive row's name: the defence, its model, and whose classifier answers."""
    name = f"{row['defence']} ({row['model']})" if isinstance(row["model"], str) and row["model"] else row["defence"]
    if row["defence"] == VICTIM_ALONE:
        return f"{name} (victim alone)"
    return name + OWN if row.get("classifier") == "own" else name


def _pct(value) -> str:
    return "—" if pd.isna(value) else f"{100 * value:.1f}"


def with_interval(frame: pd.DataFrame, field: str) -> pd.Series:
    """``value [low, high]`` in percent (``—`` where the row has no such figure)."""
    return frame.apply(lambda r: "—" if pd.isna(r[field]) else
                       f"{_pct(r[field])} [{_pct(r[f'{field}_lo'])}, {_pct(r[f'{field}_hi'])}]", axis=1)


def versus(frame: pd.DataFrame) -> pd.Series:
    """``+d.d (p=...)`` against the victim alone, ``*`` where significant at 5%."""
    def one(r):
        if pd.isna(r.get("vs_none_p")):
            return "—"
        star = "*" if r["vs_none_p"] < M.SIGNIFICANCE else ""
        return f"{100 * r['vs_none']:+.1f} (p={r['vs_none_p']:.2g}){star}"
    return frame.apply(one, axis=1)


def adaptive_markdown(frame: pd.DataFrame) -> str:
    """The adaptive table (accuracies with intervals, routes, worst case, paired test, flags) and its
    detection table."""
    frame = frame.assign(row=frame.apply(label, axis=1), eps=frame["eps"].map("{:.4g}".format))
    routes = [c for c in frame.columns if c.startswith("route_") and not c.endswith(("_lo", "_hi"))]
    shown = frame.copy()
    for field in (*INTERVALS[:2], *routes, *INTERVALS[2:]):
        shown[field] = with_interval(frame, field) if f"{field}_lo" in frame else frame[field].map(_pct)
    for field in ("worst_case_mean", "dr_transfer", "dr_adaptive", "joint_adaptive", "detection_aware_accuracy",
                  "dr_detection_aware", "joint_detection_aware"):
        shown[field] = frame[field].map(_pct) if field in frame else "—"
    shown["vs_none"] = versus(frame)
    shown["flags"] = frame["flags"].fillna("").replace("", "none")
    shown["seconds_per_100"] = frame["seconds_per_100"].map("{:.2f}".format)
    accuracy = shown[["row", "threat", "norm", "eps", "n", "draws", "eot", "attacks", "clean", "transfer", *routes,
                      "gradient_free", "worst_case", "worst_case_mean", "vs_none", "strongest", "flags",
                      "forwards_per_image", "seconds_per_100"]]
    accuracy = accuracy.rename(columns={**{r: r.removeprefix("route_") for r in routes}, "gradient_free": "square",
                                        "worst_case_mean": "mean_draws", "forwards_per_image": "forwards"})
    detect = shown[["row", "threat", "dr_transfer", "dr_adaptive", "joint_adaptive", "detection_aware_accuracy",
                    "dr_detection_aware", "joint_detection_aware"]]
    return "\n".join([*_header(accuracy, detect), *_checks(frame)])


def _checks(frame: pd.DataFrame) -> list[str]:
    """The figures each sanity check decided on (accuracies as fractions), for the checked rows."""
    checked = frame[frame["checked"].astype(str) == "True"] if "checked" in frame else frame.iloc[:0]
    cols = [c for c in checked.columns if c.startswith("check_")]
    if checked.empty or not cols:
        return []
    table = checked[["row", "threat", *cols]].rename(columns={c: c.removeprefix("check_") for c in cols})
    return ["## Sanity-check figures\n", "PGD (the checks' steps) through the strongest gradient route at an "
            "unbounded budget (Linf 1, L2 the image diameter) and along the eps sweep; the strongest reported "
            "attack, then with doubled steps (and doubled EOT for a random defence); per route, the share of "
            "images whose input gradient is exactly zero and the median gradient norm over the bare "
            "classifier's. A comparison flags only past the tolerance and at McNemar p < 0.05.\n",
            table.to_markdown(index=False, disable_numparse=True) + "\n"]


def _header(accuracy: pd.DataFrame, detect: pd.DataFrame) -> list[str]:
    return [
        "# Adaptive attacks through every defence\n", ADAPTIVE_NOTE,
        "## Accuracy under attack (%)\n", accuracy.to_markdown(index=False, disable_numparse=True) + "\n",
        "## Detection rate under attack (%)\n",
        "dr_transfer / dr_adaptive: share of the perturbed transfer images in budget / of the strongest adaptive "
        "attack's perturbed images that the detector flags (images an attack left unchanged do not count). "
        "detection_aware: a PGD that maximises the victim's loss minus a penalty on the detection score above "
        "the threshold, the score differentiated through the exact or surrogate route (accuracy and detection "
        "rate). joint: the share of clean-correct images the attack makes misclassified without being flagged.\n",
        detect.to_markdown(index=False, disable_numparse=True) + "\n"]


def worst_cases(adaptive_dir: Path, defences: list[str]) -> pd.DataFrame:
    """Per adaptive row (defence, model, threat) and image: robust in the worst case (the per-image records)."""
    frames = []
    for d in defences:
        rec = pd.read_csv(adaptive_dir / f"{d}.images.csv.gz", keep_default_na=False, dtype={"model": str})
        rec = rec[rec["kind"] == "worst_case"]
        frames.append(rec.assign(defence=d)[["defence", "model", "threat", "image", "correct"]])
    return pd.concat(frames, ignore_index=True)


def paired(a: pd.Series, b: pd.Series) -> tuple[float, float, int]:
    """Accuracy difference, exact McNemar p-value and n of two per-image outcome series (indexed by
    image) on the images they share."""
    common = a.index.intersection(b.index)
    x, y = a.loc[common].to_numpy(bool), b.loc[common].to_numpy(bool)
    if not len(common):
        return float("nan"), float("nan"), 0
    return float(x.mean() - y.mean()), M.mcnemar(x, y), len(common)


def row_key(row) -> tuple[str, str, str]:
    """(defence, model, threat) of an adaptive row (model "" for a defence with one model)."""
    return row["defence"], row["model"] if isinstance(row["model"], str) else "", row["threat"]


def comparisons(adaptive: pd.DataFrame, worst: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The adaptive rows with ``vs_none`` columns (difference, p, n), and every pair of rows under
    one threat model (the report's matrix)."""
    keyed = worst.set_index(["defence", "model", "threat", "image"])["correct"].sort_index()
    keys = [row_key(r) for _, r in adaptive.iterrows()]
    outcome = {k: keyed.loc[k] for k in keys}
    names = dict(zip(keys, adaptive.apply(label, axis=1)))
    versus_none = [paired(outcome[k], outcome[(VICTIM_ALONE, "", k[2])])
                   if k[0] != VICTIM_ALONE and (VICTIM_ALONE, "", k[2]) in outcome else (np.nan, np.nan, 0)
                   for k in keys]
    adaptive = adaptive.assign(**{c: [v[i] for v in versus_none] for i, c in enumerate(("vs_none", "vs_none_p",
                                                                                         "vs_none_n"))})
    pairs = [{"threat": a[2], "row_a": names[a], "row_b": names[b],
              **dict(zip(("difference", "p", "n"), paired(outcome[a], outcome[b])))}
             for a, b in combinations(keys, 2) if a[2] == b[2]]
    return adaptive, pd.DataFrame(pairs, columns=["threat", "row_a", "row_b", "difference", "p", "n"])


def _write(path: Path, frame: pd.DataFrame, text: str, float_format: str = "%.6f") -> None:
    with atomic_path(path.with_suffix(".csv")) as tmp:
        frame.to_csv(tmp, index=False, float_format=float_format)
    with atomic_path(path.with_suffix(".md")) as tmp:
        tmp.write_text(text)


@dataclass(frozen=True)
class TablesConfig:
    """The defences' rows to assemble, in this order, and the attack columns of the transfer tables."""
    defences: list
    columns: list


def from_params(p: dict, args) -> dict:
    """The values of ``run`` that come from the validated params (and this job's ``args``): the
    one translation, used by the CLI and by :func:`workload`."""
    return {"cfg": TablesConfig(defences=list(p["evaluate"]["defences"]), columns=p["attack"]["run"])}


def run(*, cfg: TablesConfig, evaluated_dir: str | Path, adaptive_dir: str | Path, results_dir: str | Path,
        metrics_path: str | Path) -> dict:
    """Concatenate every defence's rows (in ``cfg.defences`` order) into the tables and the summary."""
    defences, columns = cfg.defences, cfg.columns
    results_dir, summary = Path(results_dir), {"accuracy": {}, "adaptive": {}}
    for protocol in PROTOCOLS:
        frame = pd.concat([pd.read_csv(Path(evaluated_dir) / d / f"{protocol}.csv") for d in defences],
                          ignore_index=True)
        _write(results_dir / protocol, frame, markdown(frame, columns, PROTOCOL_TITLES[protocol]))
        summary["accuracy"][protocol] = M.accuracy_summary(frame)
    adaptive = pd.concat([pd.read_csv(Path(adaptive_dir) / f"{d}.csv", keep_default_na=False, na_values=[""])
                          for d in defences], ignore_index=True)
    adaptive, pairs = comparisons(adaptive, worst_cases(Path(adaptive_dir), defences))
    _write(results_dir / "adaptive", adaptive, adaptive_markdown(adaptive), "%.6g")  # p-values far below 1e-6
    with atomic_path(results_dir / "adaptive_pairs.csv") as tmp:
        pairs.to_csv(tmp, index=False, float_format="%.6f")
    for _, r in adaptive.iterrows():
        summary["adaptive"].setdefault(label(r), {})[r["threat"]] = {
            "worst_case": round(float(r["worst_case"]), 6), "flags": r["flags"] if isinstance(r["flags"], str) else "",
            "vs_none_p": None if pd.isna(r["vs_none_p"]) else round(float(r["vs_none_p"]), 6)}
    write_json(metrics_path, summary)
    return summary


def workload(p: dict, job) -> list:
    """No network runs here (file work only): nothing for benchmarks/scale.py to cost."""
    return []
