"""Stage ``tables``: assemble every defence's rows into the tables a reader opens.

Reads ``results/defences/<defence>/<protocol>.csv`` (stage ``evaluate``) and
``results/adaptive/<defence>.csv`` (stage ``adaptive``), in the order of ``evaluate.defences``,
and writes ``results/{seen,unseen,adaptive}.{csv,md}`` and ``metrics/evaluate.json``. A defence
enters the transfer tables and the adaptive table together: both inputs are required for each.
The ``none`` row is the victim alone, the reference of every column.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import metrics as M
from ..io import atomic_path, write_json

CLEAN, PROTOCOLS, AVERAGE = M.CLEAN, M.PROTOCOLS, "average"
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
    Accuracies read ``value ± half-width`` of their 95% interval (in points); Average has none."""
    order = [CLEAN, *columns]
    note = ("Accuracies: value ± half the width of the 95% bootstrap interval over the evaluated images. Only "
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
            half = (_wide(frame, f"{field}_ci_high", order) - _wide(frame, f"{field}_ci_low", order)) * scale / 2
            cells = cells + half.map(lambda h: " ± " + fmt.format(h))
        cells[AVERAGE] = average.map(fmt.format)
        cells.columns = ["Clean" if c == CLEAN else ("Average" if c == AVERAGE else c) for c in cells.columns]
        align = ("left", *["right"] * len(cells.columns))
        parts.append(f"## {caption}\n\n{cells.to_markdown(disable_numparse=True, colalign=align)}\n")
    return "\n".join(parts)


ADAPTIVE_NOTE = """Every figure is an accuracy (%) on the same seeded subset of the evaluated pool (n images, outside
the detector's calibration split). Transfer: the stored attacks made against the bare victim,
those within the budget. Routes: full = exact gradient through the defence; bpda = the defence
forward, identity backward (Athalye et al. 2018); bpda_surrogate = the defence's own
differentiable approximation backward. Each route runs every attack of adaptive.attacks (EOT
over the defence's randomness where it has any); its figure counts an image robust only if it
survives all of them. Worst case: robust under transfer and every route. Flags: the sanity
checks that failed (none = all passed). seconds_per_100: wall time of the defended answer
(recovery and classification) per 100 images on the machine that ran the job, a timing that
differs from run to run; a test-time optimisation (the reversal) multiplies it. A defence may
have a budget of its own (adaptive.per_defence): its n and the eot column say so. The `none` row is the victim alone; a row marked 'own
classifier' is attacked through its own (adversarially trained) classifier, its transfer images
are those made against the standard victim.
"""


def label(row) -> str:
    """The adaptive row's name: the defence, its model, and whose classifier answers."""
    name = f"{row['defence']} ({row['model']})" if isinstance(row["model"], str) and row["model"] else row["defence"]
    if row["defence"] == VICTIM_ALONE:
        return f"{name} (victim alone)"
    return name + OWN if row.get("classifier") == "own" else name


def adaptive_markdown(frame: pd.DataFrame) -> str:
    """The adaptive table (accuracies, routes, worst case, flags) and its detection table."""
    frame = frame.assign(row=frame.apply(label, axis=1), eps=frame["eps"].map("{:.4g}".format))
    routes = [c for c in frame.columns if c.startswith("route_")]
    pct = ["clean", "transfer", *routes, "worst_case", "dr_transfer", "dr_adaptive", "detection_aware_accuracy",
           "detection_aware_dr"]
    shown = frame.copy()
    shown[pct] = (frame[pct] * 100).apply(lambda col: col.map(lambda v: "—" if pd.isna(v) else f"{v:.1f}"))
    shown["flags"] = frame["flags"].fillna("").replace("", "none")
    shown["seconds_per_100"] = frame["seconds_per_100"].map("{:.2f}".format)
    accuracy = shown[["row", "threat", "norm", "eps", "n", "eot", "clean", "transfer", *routes, "worst_case",
                      "strongest", "flags", "seconds_per_100"]].rename(columns={r: r.removeprefix("route_") for r in routes})
    detect = shown[["row", "threat", "dr_transfer", "dr_adaptive", "detection_aware_accuracy", "detection_aware_dr"]]
    return "\n".join([*_header(accuracy, detect), *_checks(frame)])


def _checks(frame: pd.DataFrame) -> list[str]:
    """The figures each sanity check decided on (accuracies as fractions), for the checked rows."""
    checked = frame[frame["flags"].fillna("") != "not checked"]
    cols = [c for c in checked.columns if c.startswith("check_")]
    if checked.empty or not cols:
        return []
    table = checked[["row", "threat", *cols]].rename(columns={c: c.removeprefix("check_") for c in cols})
    return ["## Sanity-check figures\n", "PGD through the strongest route: accuracy at an unbounded eps, along "
            "the eps sweep, at the check's steps and at twice as many; share of images whose input gradient is "
            "exactly zero, per route.\n", table.to_markdown(index=False, disable_numparse=True) + "\n"]


def _header(accuracy: pd.DataFrame, detect: pd.DataFrame) -> list[str]:
    return [
        "# Adaptive attacks through every defence\n", ADAPTIVE_NOTE,
        "## Accuracy under attack (%)\n", accuracy.to_markdown(index=False, disable_numparse=True) + "\n",
        "## Detection rate under attack (%)\n",
        "dr_transfer / dr_adaptive: share of the transfer images in budget / of the strongest adaptive attack's "
        "images that the detector flags. detection_aware: a PGD that maximises the victim's loss minus a penalty "
        "on the detection score above the threshold (accuracy and detection rate).\n",
        detect.to_markdown(index=False, disable_numparse=True) + "\n"]


def _write(path: Path, frame: pd.DataFrame, text: str) -> None:
    with atomic_path(path.with_suffix(".csv")) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_path(path.with_suffix(".md")) as tmp:
        tmp.write_text(text)


def run(*, defences: list[str], columns: list[str], evaluated_dir: str | Path, adaptive_dir: str | Path,
        results_dir: str | Path, metrics_path: str | Path) -> dict:
    """Concatenate every defence's rows (in ``defences`` order) into the tables and the summary."""
    results_dir, summary = Path(results_dir), {"accuracy": {}, "adaptive": {}}
    for protocol in PROTOCOLS:
        frame = pd.concat([pd.read_csv(Path(evaluated_dir) / d / f"{protocol}.csv") for d in defences],
                          ignore_index=True)
        _write(results_dir / protocol, frame, markdown(frame, columns, PROTOCOL_TITLES[protocol]))
        summary["accuracy"][protocol] = {
            d: {**{r["column"]: round(r["accuracy"], 6) for _, r in g.iterrows()},
                AVERAGE: round(float(g["accuracy"].mean()), 6)}
            for d, g in frame.groupby("defence", sort=False)}
    adaptive = pd.concat([pd.read_csv(Path(adaptive_dir) / f"{d}.csv", keep_default_na=False, na_values=[""])
                          for d in defences], ignore_index=True)
    _write(results_dir / "adaptive", adaptive, adaptive_markdown(adaptive))
    for _, r in adaptive.iterrows():
        summary["adaptive"].setdefault(label(r), {})[r["threat"]] = {
            "worst_case": round(float(r["worst_case"]), 6), "flags": r["flags"] if isinstance(r["flags"], str) else ""}
    write_json(metrics_path, summary)
    return summary


def workload(p: dict, job) -> list:
    """No network runs here (file work only): nothing for benchmarks/scale.py to cost."""
    return []
