"""What the tiny DAG's last stages write: the evaluation and adaptive tables, the report page in
a real browser, and `make report`'s zip, under either runner."""

from __future__ import annotations

import pytest

from helpers import make, sh, tiny_params

pytestmark = pytest.mark.slow


def test_evaluation_tables_and_the_no_defence_row(workspaces):
    """The tables exist in the shape of Li et al.'s Tables II and III, and the identity defence
    reproduces the attack sets' own figures."""
    import json

    import pandas as pd

    from advrecover.data.adversarial import read_adversarial

    _, ws = workspaces
    for protocol in ("seen", "unseen"):
        text = (ws / f"results/{protocol}.md").read_text()
        assert "| defence" in text and "Clean" in text and "Average" in text
        frame = pd.read_csv(ws / f"results/{protocol}.csv")
        assert {"accuracy", "recovery_rate", "recovery_ratio", "psnr", "ssim", "psnr_to_input"} <= set(frame.columns)
        rows = set(tiny_params()["evaluate"]["defences"]) | ({"cae_aae (mixed)"} if protocol == "seen" else set())
        assert set(frame["defence"]) == rows and set(frame["classifier"]) == {"victim"}
        assert set(frame["column"]) == {"clean", "fgsm", "pgd_8"}
    unseen = pd.read_csv(ws / "results/unseen.csv")
    cells = unseen[(unseen["defence"] == "cae_aae") & (unseen["column"] != "clean")]
    assert (cells["train_set"] != cells["column"]).all()
    accuracy = json.loads((ws / "metrics/evaluate.json").read_text())["accuracy"]
    for column in tiny_params()["attack"]["run"]:  # one answer per image: the same predictions, exactly
        s = read_adversarial(ws / f"data/adversarial/test/{column}.h5")
        assert accuracy["seen"]["none"][column] == round(float((s.pred_adv == s.label).mean()), 6), column
        figures = json.loads((ws / f"metrics/attack/test/{column}.json").read_text())
        assert accuracy["seen"]["none"][column] == figures["adversarial_accuracy"], column
        assert 0 <= figures["near_boundary_share"] <= 1
    victim = json.loads((ws / "metrics/victim.json").read_text())["accuracy"]["test"]
    assert accuracy["seen"]["none"]["clean"] == victim


def test_adaptive_table_has_every_defence_the_reference_row_and_the_flags(workspaces):
    import pandas as pd

    _, ws = workspaces
    defences = tiny_params()["evaluate"]["defences"]
    frame = pd.read_csv(ws / "results/adaptive.csv")
    assert set(frame["defence"]) == set(defences)
    assert {"clean", "transfer", "route_full", "route_bpda", "worst_case", "dr_transfer", "flags"} <= set(frame.columns)
    routes = [c for c in frame.columns if c.startswith("route_") and not c.endswith(("_lo", "_hi"))]
    assert (frame["worst_case"] <= frame[["transfer", *routes]].min(axis=1) + 1e-9).all()
    text = (ws / "results/adaptive.md").read_text()
    assert "none (victim alone)" in text and "| flags" in text
    summary = sh(["python", "-m", "advrecover.outputs", "summary"], ws).stdout
    assert "Adaptive attacks through every defence" in summary
    assert summary.rstrip().endswith(str((ws / "results/report.html").resolve()))  # what `make run` ends with


CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]  # nothing to reach on a closed network


def open_in_chromium(page_path, screenshot) -> dict:
    """Load ``page_path`` in Debian's headless chromium (driven by Playwright, which downloads no
    browser): console errors, requests and failed ones, each image's natural size, every table cell
    that names its CSV source; a full-page screenshot. Skips, saying why, where chromium cannot start."""
    import shutil

    from playwright.sync_api import Error, sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (`make browser` installs it as root)")
    seen = {"errors": [], "requests": [], "failed": []}
    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        except Error as exc:
            pytest.skip(f"chromium cannot start here: {str(exc).splitlines()[0]}")
        page = browser.new_page()
        page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: seen["errors"].append(str(exc)))
        page.on("request", lambda r: seen["requests"].append(r.url))
        page.on("requestfailed", lambda r: seen["failed"].append(r.url))
        page.goto(page_path.as_uri(), wait_until="load")
        seen["images"] = page.eval_on_selector_all("img", "els => els.map(e => [e.naturalWidth, e.naturalHeight])")
        seen["cells"] = page.eval_on_selector_all(
            "td[data-file]", "els => els.map(e => ({...e.dataset, text: e.firstChild.textContent.trim(), "
                             "note: e.querySelector('small') ? e.querySelector('small').textContent : ''}))")
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    return seen


def test_report_page_opens_offline_and_shows_the_csvs(workspaces, tmp_path):
    """results/report.html: self-contained, loads in a real browser with no console error and no
    failed request, every figure decodes, and every number in its tables is that of results/*.csv."""
    import pandas as pd

    snake, _ = workspaces
    html = (snake / "results/report.html").read_text()
    assert "http://" not in html and "https://" not in html
    figures = 3 + len(list((snake / "results").glob("ablation-*.csv")))  # the committed ablations draw too
    assert html.count('src="data:image/png;base64,') == figures  # every figure, inlined
    seen = open_in_chromium(snake / "results/report.html", tmp_path / "report.png")
    assert seen["errors"] == [] and seen["failed"] == []
    assert seen["requests"] == [(snake / "results/report.html").as_uri()]  # the page itself, nothing else
    assert len(seen["images"]) == figures and all(w > 0 and h > 0 for w, h in seen["images"])
    assert (tmp_path / "report.png").stat().st_size > 10_000
    tables = {f: pd.read_csv(snake / "results" / f, keep_default_na=False, na_values=[""])
              for f in ("seen.csv", "unseen.csv", "adaptive.csv")}
    assert {c["file"] for c in seen["cells"]} == set(tables)
    for cell in seen["cells"]:
        value = tables[cell["file"]].loc[[int(r) for r in cell["row"].split(",")], cell["field"]].mean()
        assert cell["text"] == f"{value * float(cell['scale']):.{cell['digits']}f}", cell
        if cell["note"] and cell["file"] == "adaptive.csv":  # an adaptive accuracy's exact interval
            row = tables["adaptive.csv"].loc[int(cell["row"])]
            assert cell["note"] == f"[{100 * row[cell['field'] + '_lo']:.1f}, {100 * row[cell['field'] + '_hi']:.1f}]"
    for name in ("seen.csv", "unseen.csv"):  # every accuracy of every row is on the page
        shown = {int(c["row"]) for c in seen["cells"] if c["file"] == name and c["field"] == "accuracy"
                 and "," not in c["row"]}
        assert shown == set(range(len(tables[name]))), name
    assert any(c["note"] for c in seen["cells"] if c["file"] == "adaptive.csv")  # the intervals are shown
    shown = {(int(c["row"]), c["field"]) for c in seen["cells"] if c["file"] == "adaptive.csv"}
    assert {(i, "worst_case") for i in range(len(tables["adaptive.csv"]))} <= shown


def test_make_report_zips_every_figure_after_either_runner(workspaces):
    """`make report` (snakemake --report) after a Snakemake run and after `dvc repro`: the zip has
    the report page and every figure of results/figures/."""
    import zipfile

    for ws in workspaces:
        make("report", ws)
        with zipfile.ZipFile(ws / "results/report.zip") as z:
            names = z.namelist()
        figures = sorted(p.name for p in (ws / "results/figures").glob("*.png"))
        assert figures == ["grid.png", "robust_accuracy.png", "training.png"]
        assert "report/report.html" in names and all(any(n.endswith("/" + f) for n in names) for f in figures), names
        assert "results/report.zip" not in sh(["python", "-m", "advrecover.outputs", "stale"], ws).stdout
    import json

    shown = json.loads(sh(["dvc", "plots", "show", "--json"], workspaces[1]).stdout)["data"]
    assert {f"results/figures/{f}" for f in figures} <= set(shown)  # the figures are DVC plots too


def test_the_example_plugin_runs_through_every_stage(workspaces):
    """The tiny DAG deploys a classifier and a defence from the example plugin (examples/plugin),
    outside src/advrecover: the victim (and its adversarially trained reference) is the plugin's
    class, and the defence has its rows in the transfer tables, the adaptive table (through its
    declared BPDA surrogate) and the report, under both runners."""
    import json

    import pandas as pd
    import torch

    for ws in workspaces:
        assert json.loads((ws / "metrics/victim.json").read_text())["mode"] == "module"
        robust = torch.load(ws / "models/victim_robust.pt", weights_only=True)["architecture"]
        assert robust["module"] == "advrecover_example.classifier:SmallCNN"
        for table in ("seen", "unseen", "adaptive"):
            assert "bit_depth" in set(pd.read_csv(ws / f"results/{table}.csv")["defence"]), table
            assert "| bit_depth" in (ws / f"results/{table}.md").read_text(), table
        row = pd.read_csv(ws / "results/adaptive.csv").set_index("defence").loc["bit_depth"]
        assert pd.notna(row["route_bpda_surrogate"]) and pd.isna(row["route_full"])
        assert "bit_depth" in (ws / "results/report.html").read_text()
        assert not list((ws / "src/advrecover").rglob("*bit*depth*"))
