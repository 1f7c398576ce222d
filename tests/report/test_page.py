"""The report page: cells that name their source, the best value marked, a page that fetches nothing."""

from __future__ import annotations

import math

import pandas as pd

from advrecover.report import page


def frame() -> pd.DataFrame:
    """A seen table in the evaluate stage's long format: two defences, clean and two attacks."""
    rows = []
    for defence, accuracies in (("none", [1.0, 0.2, 0.1]), ("cae_aae (mixed)", [0.9, 0.6, 0.6])):
        for column, accuracy in zip(("clean", "fgsm", "pgd"), accuracies):
            rows.append({"defence": defence, "column": column, "accuracy": accuracy, "accuracy_ci_low": accuracy - 0.05,
                         "accuracy_ci_high": accuracy + 0.05, "ssim": accuracy / 2})
    return pd.DataFrame(rows)


def test_a_number_cell_formats_like_the_markdown_tables_and_names_its_source():
    cell = page.number("seen.csv", [3], "accuracy", [0.98765])
    assert cell.text == "98.8" and cell.attrs == {"data-file": "seen.csv", "data-row": "3", "data-field": "accuracy",
                                                  "data-scale": 100, "data-digits": 1}
    assert page.number("seen.csv", [1], "ssim", [0.5]).text == "0.500"
    assert page.number("seen.csv", [0, 1], "psnr", [20.0, 30.0]).text == "25.0"
    missing = page.number("adaptive.csv", [0], "route_full", [math.nan])
    assert missing.text == "\u2014" and missing.attrs == {}


def test_protocol_table_rows_average_and_the_adaptive_worst_case_side_by_side():
    worst = {"cae_aae (mixed)": (4, 0.25, "not_converged")}
    table = page.protocol_table(frame(), "seen.csv", "accuracy", ["clean", "fgsm", "pgd"], worst)
    assert table["header"] == ["Clean", "fgsm", "pgd", "Average", "adaptive worst case", "flags"]
    (none, none_cells), (model, cells) = table["body"]
    assert (none, model) == ("none", "cae_aae (mixed)")
    assert [c.attrs["data-row"] for c in cells[:3]] == ["3", "4", "5"] and cells[3].attrs["data-row"] == "3,4,5"
    assert cells[3].text == "70.0"  # the mean over Clean and the attacks, as results/seen.md
    assert cells[4].attrs["data-file"] == "adaptive.csv" and cells[4].attrs["data-row"] == "4" and cells[4].text == "25.0"
    assert cells[5].text == "not_converged" and cells[5].css == "flags"
    assert none_cells[4].text == "\u2014"  # no adaptive row for it in ``worst``
    assert [c.best for c in none_cells[:4]] == [True, False, False, False]
    assert [c.best for c in cells[:4]] == [False, True, True, True]
    assert cells[0].note == "[85.0, 95.0]"  # its 95% interval under the number


def test_ties_are_all_marked_and_lower_is_better_fields_are_not():
    cells = [[page.number("f", [0], "accuracy", [0.5]), page.number("f", [0], "detection_rate", [0.1])],
             [page.number("f", [1], "accuracy", [0.5]), page.number("f", [1], "detection_rate", [0.9])]]
    page.mark_best(cells, ["accuracy", "detection_rate"])
    assert [row[0].best for row in cells] == [True, True] and not any(row[1].best for row in cells)


def test_the_page_inlines_its_images_and_fetches_nothing():
    table = page.protocol_table(frame(), "seen.csv", "accuracy", ["clean", "fgsm", "pgd"], {})
    adaptive = {"header": ["threat"], "body": [("none (victim alone)", [page.Cell("linf")])]}
    png = b"\x89PNG\r\n\x1a\n"
    pairs = [page.pairs_table(pd.DataFrame([{"threat": "linf", "row_a": "none", "row_b": "nrp", "difference": -0.5,
                                             "p": 0.001}]), "linf", ["none", "nrp"])]
    html = page.render(params_file="params.yaml", revision="abc", adaptive_note="note", adaptive=adaptive, pairs=pairs,
                       protocols=[{"name": "seen", "title": "Seen", "accuracy": table, "others": [("PSNR", table)]}],
                       figures={"robust_accuracy": png, "grid": png, "training": png}, grid_note="rows",
                       ablations=[{"title": "Fig. 4", "command": "make ablation-lambda", "csv": "x.csv", "png": None}],
                       versions={"torch": "2"}, artifacts=[("data/pools/test.h5", "0" * 64, 10, False),
                                                           ("data/adversarial/test/pgd.h5", "1" * 64, 20, True)],
                       params_text="seed: 0 <b>")
    assert "http://" not in html and "https://" not in html
    assert '<td class=" significant">-50.0*<br><small class="ci">p=0.001</small></td>' in html
    assert html.count('src="data:image/png;base64,iVBORw0KGgo') == 3
    assert 'class="best ' in html and 'data-row="3,4,5"' in html
    assert "make ablation-lambda" in html and "seed: 0 &lt;b&gt;" in html  # escaped
    assert '<span class="volatile">abc</span>' in html and '<code class="volatile">' + "1" * 64 in html


def test_the_pair_matrix_reads_row_minus_column_both_ways_and_marks_significance():
    pairs = pd.DataFrame([{"threat": "linf", "row_a": "a", "row_b": "b", "difference": 0.125, "p": 0.02},
                          {"threat": "linf", "row_a": "a", "row_b": "c", "difference": 0.01, "p": 0.9},
                          {"threat": "l2", "row_a": "a", "row_b": "b", "difference": 0.5, "p": 0.0}])
    table = page.pairs_table(pairs, "linf", ["a", "b", "c"])
    (_, a), (_, b), (_, c) = table["body"]
    assert a[1].text == "+12.5*" and a[1].note == "p=0.02" and a[1].css == "significant"
    assert b[0].text == "-12.5*" and c[0].text == "-1.0" and c[0].css == ""  # not significant: no ranking
    assert a[0].text == b[2].text == "\u2014"  # itself, and a pair not compared (b, c)
