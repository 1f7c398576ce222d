"""Stage report: which histories and artifacts it reads under the params, and the ablations it draws or explains."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from advrecover.stages import report


def test_histories_and_artifacts_follow_the_params(params):
    histories = report.histories(params, "metrics")
    assert set(histories) == set(report.TRAINERS)
    sets = [*params["recovery"]["train_on"], "mixed"]
    assert set(histories["aae"]) == {f"default/{s}" for s in sets}
    assert histories["aae"]["default/mixed"] == Path("metrics/train/aae/default/mixed.csv")
    files = report.artifacts(params, pools_dir="data/pools", adversarial_dir="data/adversarial",
                             victim_path="models/victim.pt", models_dir="models")
    assert Path("data/adversarial/aae/pgd_8.h5") in files and Path("models/aae/default/mixed.pt") in files
    assert len(files) == len(set(files)) == (len(params["sample"]["pools"]) + 2 * len(params["attack"]["run"]) + 2
                                              + 1 + len(sets) + len(params["purifiers"]) + len(params["ssl"]["tasks"])
                                              + 1)  # the diffusion model
    assert Path("models/diffusion/diffusion.pt") in files


def test_ablations_are_drawn_when_their_csv_exists_and_explained_otherwise(tmp_path):
    pd.DataFrame({"experiment": ["a", "b"], "recovery.cae.default.lambda1": [0.1, 0.01],
                  "recovery.aae.default.lambda2": [0.1, 0.1], "seen.cae_aae.average": [0.5, 0.6]}
                 ).to_csv(tmp_path / "ablation-lambda.csv", index=False)
    lam, depth = report.ablations(tmp_path)
    assert lam["png"].startswith(b"\x89PNG") and depth["png"] is None and depth["command"] == "make ablation-depth"
    pd.DataFrame({"x": [1]}).to_csv(tmp_path / "ablation-depth.csv", index=False)
    with pytest.raises(ValueError, match="ablation-depth.csv: no seen.cae_aae"):
        report.ablations(tmp_path)
