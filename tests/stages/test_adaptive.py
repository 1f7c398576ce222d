"""Stage adaptive: the per-defence budget and its nested subset, the cost column, and what may differ
between two runs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from advrecover.stages.adaptive import budget, subset
from advrecover.stages.tables import adaptive_markdown

from helpers import same_output


def test_a_per_defence_budget_replaces_the_keys_it_names():
    section = {"n": 100, "eot": 4, "attacks": {"a": {}, "b": {}}, "checks": {"steps": 10, "tolerance": 0.02},
               "per_defence": {"slow": {"n": 20, "attacks": {"a": {}}, "checks": {"steps": 5}}}}
    assert budget(section, "slow") == {"n": 20, "eot": 4, "attacks": {"a": {}},
                                       "checks": {"steps": 5, "tolerance": 0.02}}
    assert budget(section, "fast") == {"n": 100, "eot": 4, "attacks": {"a": {}, "b": {}},
                                       "checks": {"steps": 10, "tolerance": 0.02}}


def row(defence: str, worst: float, seconds: float) -> dict:
    figures = {"clean": 1.0, "transfer": 0.9, "route_full": 0.8, "route_bpda": worst, "gradient_free": 0.85,
               "worst_case": worst}
    return {"defence": defence, "model": "", "classifier": "victim", "threat": "linf", "norm": "Linf", "eps": 0.03,
            "n": 50, "draws": 10, "eot": 2, "attacks": "apgd_ce(20) square(1000q)",
            **{k: v for f, a in figures.items() for k, v in ((f, a), (f"{f}_lo", a - 0.1), (f"{f}_hi", a + 0.05))},
            "worst_case_mean": worst + 0.1, "vs_none": 0.1, "vs_none_p": 0.03, "strongest": "apgd_ce via bpda",
            "dr_transfer": 0.1, "dr_adaptive": 0.1, "joint_adaptive": 0.2, "detection_aware_accuracy": 0.5,
            "dr_detection_aware": 0.0, "joint_detection_aware": 0.1, "flags": "", "checked": True,
            "forwards_per_image": 1234.0, "seconds_per_100": seconds}


def test_the_adaptive_table_has_a_cost_column_that_only_timing_may_change(tmp_path):
    frames = [pd.DataFrame([row("none", 0.5, 0.01), row("reversal_contrastive", 0.7, s)]) for s in (0.86, 12.5)]
    texts = [adaptive_markdown(f) for f in frames]
    assert "seconds_per_100" in texts[0] and "12.50" in texts[1] and "| 2 " in texts[0]  # cost and eot shown
    assert "| 10 " in texts[0] and "apgd_ce(20) square(1000q)" in texts[0]  # draws, and the row's attacks
    assert "70.0 [60.0, 75.0]" in texts[0] and "+10.0 (p=0.03)*" in texts[0]  # interval; significant vs none
    detection = texts[0].split("## Detection rate")[1].split("\n| none")[1].split("|")
    assert [c.strip() for c in detection[2:8]] == ["10.0", "10.0", "20.0", "50.0", "0.0", "10.0"]  # every column filled
    for suffix, write in ((".md", lambda f, t, p: p.write_text(t)), (".csv", lambda f, t, p: f.to_csv(p, index=False))):
        paths = [tmp_path / f"{k}{suffix}" for k in "ab"]
        for f, t, p in zip(frames, texts, paths):
            write(f, t, p)
        assert same_output(*paths)  # a timing differs, nothing else
        other = frames[1].assign(worst_case=0.6)
        write(other, adaptive_markdown(other), paths[1])
        assert not same_output(*paths)  # a figure differs


def test_a_smaller_budget_attacks_a_subset_of_a_larger_ones_images():
    rows = np.arange(3, 253)
    small, large = subset(rows, 32, 0), subset(rows, 80, 0)
    assert len(small) == 32 and len(large) == 80 and set(small) <= set(large)
    assert list(large) == sorted(large) and not set(large) <= set(subset(rows, 80, 1))
    assert subset(rows, 0, 0) is rows and subset(rows, 999, 0) is rows
