"""The documentation: the MkDocs site builds with --strict, the parameter page is the schema's,
and the README stays a short map into it."""

from __future__ import annotations

import re

from advrecover import paramdoc
from helpers import REPO, sh


def test_the_site_builds_strict(tmp_path):
    """Every link and included file resolves (the measured tables come from results/)."""
    res = sh(["mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")], REPO)
    assert "Documentation built" in res.stdout + res.stderr
    assert (tmp_path / "site/figures/robust_accuracy.png").is_file()
    results = (tmp_path / "site/results/index.html").read_text()
    assert "Adaptive attacks through every defence" in results  # results/adaptive.md, included


def test_the_parameter_page_is_current_and_lists_every_key():
    page = (REPO / "docs/parameters.md").read_text()
    assert page == paramdoc.page(), "docs/parameters.md is stale: run `python -m advrecover.paramdoc`"
    listed = set(re.findall(r"^\| `([^`]+)` \|", page, re.M))
    keys = paramdoc.keys()
    assert {"seed", "adaptive.draws", "adaptive.checks.min_gradient_ratio", "attack.instances.<name>.method",
            "purifiers.<name>.train.attack"} <= set(keys)
    assert set(keys) == listed


def test_the_readme_is_a_short_map_whose_links_resolve():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) < 150
    assert "make run" in text and "make test" in text
    for target in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (REPO / target).is_file(), target


def test_the_readmes_headline_figures_are_the_committed_runs():
    """README.md's headline block is generated (advrecover.report.headline) from the committed results
    and metrics: a new run that is committed without regenerating it fails here."""
    from advrecover.report import headline

    text = (REPO / "README.md").read_text()
    assert headline.block(REPO) in text
