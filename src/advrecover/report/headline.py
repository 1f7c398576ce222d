"""The README's headline figures, generated from a run's committed files so that they never go stale.

The block between ``<!-- headline:start -->`` and ``<!-- headline:end -->`` of README.md is this
module's output on the committed ``results/`` and ``metrics/``; a test checks that it still is.

    python -m advrecover.report.headline README.md     # rewrite the block after a new run
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from .. import metrics as M

START, END = "<!-- headline:start -->", "<!-- headline:end -->"
# (label, defence, column of results/seen.csv): the undefended victim's white-box rows and the trade-off.
SEEN_ROWS = (
    ("victim, clean (test pool: renditions)", "none", "clean"),
    ("victim, white-box FGSM eps 0.008 (Table I `fgsm`)", "none", "fgsm"),
    ("victim, white-box PGD eps 0.01, 40 steps (Table I `pgd`)", "none", "pgd"),
    ("victim, white-box PGD 8/255, 10 steps (`pgd_8`)", "none", "pgd_8"),
    ("adversarially trained, clean", "adv_trained", "clean"),
)


def _row(label: str, accuracy: float, n: int, low: float, high: float) -> str:
    return f"| {label} | {100 * accuracy:.1f}% | {n} | {100 * low:.1f}-{100 * high:.1f}% |"


def block(root: Path) -> str:
    """The Markdown table of headline accuracies, each with its n and exact 95% interval."""
    seen = pd.read_csv(root / "results/seen.csv")
    seen = seen[(seen["protocol"] == "seen") & seen["train_set"].isna()]
    rows = []
    for label, defence, column in SEEN_ROWS:
        r = seen[(seen["defence"] == defence) & (seen["column"] == column)].iloc[0]
        rows.append(_row(label, r["accuracy"], int(r["n"]), r["accuracy_ci_low"], r["accuracy_ci_high"]))
    aae = json.loads((root / "metrics/victim.json").read_text())["accuracy"]["aae"]
    n_aae = json.loads((root / "metrics/sample.json").read_text())["aae"]["n"]
    rows.insert(1, _row("victim, clean (aae pool: photos)", aae, n_aae, *M.exact_ci(round(aae * n_aae), n_aae)))
    adaptive = pd.read_csv(root / "results/adaptive.csv").set_index("defence")
    for defence, label in (("none", "victim"), ("adv_trained", "adversarially trained")):
        r = adaptive.loc[defence]
        rows.append(_row(f"{label}, adaptive worst case at {round(r['eps'] * 255)}/255 ({r['attacks']})", r["worst_case"],
                         int(r["n"]), r["worst_case_lo"], r["worst_case_hi"]))
    head = ["| figure (quick profile, committed run) | accuracy | n | exact 95% interval |", "| --- | --- | --- | --- |"]
    return "\n".join([START, *head, *rows, END])


def rewrite(readme: Path, root: Path) -> None:
    """Replace the headline block of ``readme`` with :func:`block` of ``root``."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no {START} ... {END} block")
    head, rest = text.split(START, 1)
    readme.write_text(head + block(root) + rest.split(END, 1)[1])


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    rewrite(path, path.resolve().parent)
