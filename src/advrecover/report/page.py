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
           "gradient_free", "worst_case_mean", "dr_transfer", "dr_adaptive", "detection_aware_accuracy",
           "dr_detection_aware"}
HIGHER_IS_BETTER = {"accuracy", "recovery_rate", "recovery_ratio", "psnr", "ssim", "clean", "transfer", "worst_case",
                    "gradient_free", "worst_case_mean"}
SIGNIFICANCE = 0.05  # as advrecover.metrics.SIGNIFICANCE (the page imports no torch-side module)


@dataclass
class Cell:
    """One table cell: its text, where its number comes from (data-* attributes), and whether it is the column's best."""

    text: str
    attrs: dict = field(default_factory=dict)
    value: float | None = None
    title: str = ""
    best: bool = False
    css: str = ""
    note: str = ""  # a second line under the number (its interval)


def number(file: str, rows: list[int], field_: str, values: list[float], title: str = "",
           interval: tuple[float, float] | None = None) -> Cell:
    """A cell holding ``field_`` of CSV ``rows`` (their mean when several), formatted like the markdown
    tables, with its 95% ``interval`` (fractions) on a second line when given."""
    scale, digits = (100, 1) if field_ in PERCENT or field_.startswith("route_") else (1, 3 if field_ == "ssim" else 1)
    value = sum(values) / len(values) if values else None
    if value is None or pd.isna(value):
        return Cell("\u2014")
    attrs = {"data-file": file, "data-row": ",".join(map(str, rows)), "data-field": field_, "data-scale": scale,
             "data-digits": digits}
    note = f"[{interval[0] * scale:.{digits}f}, {interval[1] * scale:.{digits}f}]" if interval else ""
    return Cell(f"{value * scale:.{digits}f}", attrs, value, title, note=note)


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
        cells = [number(file, [by_column[c]], metric, [frame.at[by_column[c], metric]],
                        interval=_interval(frame, by_column[c], metric)) if c in by_column else Cell("\u2014")
                 for c in columns]
        cells.append(number(file, list(rows), metric, [frame.at[i, metric] for i in rows]))  # as results/*.md
        index, worst, flags = adaptive.get(label, (None, None, ""))
        cells.append(number("adaptive.csv", [index], "worst_case", [worst]) if index is not None else Cell("\u2014"))
        cells.append(Cell(flags or ("none" if index is not None else ""), css="flags" if flags else ""))
        body.append((label, cells))
    mark_best([cells for _, cells in body], [*([metric] * (len(columns) + 1)), "worst_case", "flags"])
    return {"header": ["Clean" if c == "clean" else c for c in columns] + ["Average", "adaptive worst case", "flags"],
            "body": body}


def _interval(frame: pd.DataFrame, row: int, metric: str) -> tuple[float, float] | None:
    low, high = f"{metric}_ci_low", f"{metric}_ci_high"
    return (frame.at[row, low], frame.at[row, high]) if low in frame else None


def versus(difference: float, p: float) -> Cell:
    """A paired comparison: the difference in points and the exact McNemar p-value, marked when significant."""
    if pd.isna(p):
        return Cell("\u2014")
    star = p < SIGNIFICANCE
    return Cell(f"{difference * 100:+.1f}{'*' if star else ''}", note=f"p={p:.2g}", css="significant" if star else "")


def adaptive_table(frame: pd.DataFrame, labels: list[str]) -> dict:
    """The adaptive table: transfer, every gradient route and Square side by side with their exact
    intervals, the worst case (over draws for a random defence, the mean over draws beside it), the
    paired comparison with the victim alone, the attacks, the strongest attack and flags."""
    routes = [c for c in frame.columns if c.startswith("route_") and not c.endswith(("_lo", "_hi"))]
    fields = ["clean", "transfer", *routes, "gradient_free", "worst_case"]
    body = []
    for (i, row), label in zip(frame.iterrows(), labels):
        cells = [Cell(str(row["threat"])), Cell(str(row["n"])), Cell(str(row["draws"])), Cell(str(row["eot"]))]
        cells += [number("adaptive.csv", [i], f, [row[f]], interval=(row[f"{f}_lo"], row[f"{f}_hi"])) for f in fields]
        cells += [number("adaptive.csv", [i], "worst_case_mean", [row["worst_case_mean"]]),
                  versus(row["vs_none"], row["vs_none_p"])]
        flags = row["flags"] if isinstance(row["flags"], str) else ""
        cells += [Cell(str(row["attacks"])), Cell(str(row["strongest"])), Cell(flags or "none", css="flags" if flags else "")]
        body.append((label, cells))
    header = ["threat", "n", "draws", "eot", *fields, "mean_draws", "vs none", "attacks", "strongest", "flags"]
    mark_best([cells for _, cells in body], header)
    names = {"gradient_free": "square", "worst_case": "worst case", **{r: r.removeprefix("route_") for r in routes}}
    return {"header": [names.get(h, h) for h in header], "body": body}


def pairs_table(pairs: pd.DataFrame, threat: str, labels: list[str]) -> dict:
    """The matrix of paired comparisons under one threat model: row minus column (points, worst case
    on the images both were attacked on) with the exact McNemar p-value; * where significant."""
    own = pairs[pairs["threat"] == threat]
    lookup = {(r["row_a"], r["row_b"]): (r["difference"], r["p"]) for _, r in own.iterrows()}
    lookup.update({(b, a): (-d, p) for (a, b), (d, p) in list(lookup.items())})
    body = [(a, [versus(*lookup[a, b]) if (a, b) in lookup else Cell("\u2014") for b in labels]) for a in labels]
    return {"threat": threat, "header": labels, "body": body}


def image(data: bytes) -> str:
    """A PNG as a data URI (the page fetches nothing)."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def render(**context) -> str:
    """The page from ``page.html.j2`` (autoescaped)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("advrecover.report", "."), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.get_template("page.html.j2").render(image=image, **context)
