"""The report page: every table, figure and provenance record in one HTML file with its images
(base64 PNG) and its style inlined, so it opens offline from a mail attachment or a DVC remote.

Each number in a table cell carries where it comes from (``data-file``, ``data-row``: the
0-based row of that ``results/`` CSV, ``data-field``, ``data-scale``, ``data-digits``; an
Average names every row it averages), so a test can check the page against the CSVs; the best
value of each column is marked (``class="best"``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import jinja2
import pandas as pd

PERCENT = {"accuracy", "recovery_rate", "recovery_ratio", "detection_rate", "clean", "transfer", "worst_case",
           "dr_transfer", "dr_adaptive", "detection_aware_accuracy", "detection_aware_dr"}
HIGHER_IS_BETTER = {"accuracy", "recovery_rate", "recovery_ratio", "psnr", "ssim", "clean", "transfer", "worst_case"}


@dataclass
class Cell:
    """One table cell: its text, where its number comes from (data-* attributes), and whether it is the column's best."""

    text: str
    attrs: dict = field(default_factory=dict)
    value: float | None = None
    title: str = ""
    best: bool = False
    css: str = ""


def number(file: str, rows: list[int], field_: str, values: list[float], title: str = "") -> Cell:
    """A cell holding ``field_`` of CSV ``rows`` (their mean when several), formatted like the markdown tables."""
    scale, digits = (100, 1) if field_ in PERCENT or field_.startswith("route_") else (1, 3 if field_ == "ssim" else 1)
    value = sum(values) / len(values) if values else None
    if value is None or pd.isna(value):
        return Cell("\u2014")
    attrs = {"data-file": file, "data-row": ",".join(map(str, rows)), "data-field": field_, "data-scale": scale,
             "data-digits": digits}
    return Cell(f"{value * scale:.{digits}f}", attrs, value, title)


def mark_best(table: list[list[Cell]], fields: list[str]) -> None:
    """Mark the highest value of each column whose field is better high (ties all marked)."""
    for j, name in enumerate(fields):
        if name not in HIGHER_IS_BETTER and not name.startswith("route_"):
            continue
        values = [row[j].value for row in table if row[j].value is not None]
        for row in table:
            row[j].best = bool(values) and row[j].value is not None and round(row[j].value, 6) == round(max(values), 6)


def protocol_table(frame: pd.DataFrame, file: str, metric: str, columns: list[str], adaptive: dict) -> dict:
    """Rows = defences, columns = Clean, the attacks, Average (Li et al.'s Tables II/III), then the
    adaptive worst case of the same model (``adaptive``: row label -> (row index, worst case, flags))."""
    body, labels = [], list(dict.fromkeys(frame["defence"]))
    for label in labels:
        rows = frame.index[frame["defence"] == label]
        by_column = {frame.at[i, "column"]: i for i in rows}
        cells = [number(file, [by_column[c]], metric, [frame.at[by_column[c], metric]], _interval(frame, by_column[c], metric))
                 if c in by_column else Cell("\u2014") for c in columns]
        cells.append(number(file, list(rows), metric, [frame.at[i, metric] for i in rows]))  # as results/*.md
        index, worst, flags = adaptive.get(label, (None, None, ""))
        cells.append(number("adaptive.csv", [index], "worst_case", [worst]) if index is not None else Cell("\u2014"))
        cells.append(Cell(flags or ("none" if index is not None else ""), css="flags" if flags else ""))
        body.append((label, cells))
    mark_best([cells for _, cells in body], [*([metric] * (len(columns) + 1)), "worst_case", "flags"])
    return {"header": ["Clean" if c == "clean" else c for c in columns] + ["Average", "adaptive worst case", "flags"],
            "body": body}


def _interval(frame: pd.DataFrame, row: int, metric: str) -> str:
    low, high = f"{metric}_ci_low", f"{metric}_ci_high"
    if low not in frame:
        return ""
    return f"95% interval {frame.at[row, low] * 100:.1f}\u2013{frame.at[row, high] * 100:.1f}"


def adaptive_table(frame: pd.DataFrame, labels: list[str]) -> dict:
    """The adaptive table: transfer and every gradient route side by side, the worst case, the strongest attack, flags."""
    fields = ["clean", "transfer", *[c for c in frame.columns if c.startswith("route_")], "worst_case"]
    body = []
    for (i, row), label in zip(frame.iterrows(), labels):
        cells = [Cell(str(row["threat"])), Cell(str(row["n"])), Cell(str(row["eot"]))]
        cells += [number("adaptive.csv", [i], f, [row[f]]) for f in fields]
        flags = row["flags"] if isinstance(row["flags"], str) else ""
        cells += [Cell(str(row["strongest"])), Cell(flags or "none", css="flags" if flags else "")]
        body.append((label, cells))
    mark_best([cells for _, cells in body], ["threat", "n", "eot", *fields, "strongest", "flags"])
    return {"header": ["threat", "n", "eot", *[f.removeprefix("route_") for f in fields], "strongest", "flags"],
            "body": body}


def image(data: bytes) -> str:
    """A PNG as a data URI (the page fetches nothing)."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def render(**context) -> str:
    """The page from ``page.html.j2`` (autoescaped)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("advrecover.report", "."), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.get_template("page.html.j2").render(image=image, **context)
