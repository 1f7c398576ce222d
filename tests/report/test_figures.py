"""The report's figures from constructed tables: what each one draws, and stable bytes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from advrecover.report import figures, grid


def adaptive_rows() -> pd.DataFrame:
    return pd.DataFrame([
        {"defence": "none", "norm": "Linf", "eps": 8 / 255, "clean": 1.0, "check_eps_sweep": "[0.6, 0.2, 0.0]",
         "check_eps_sweep_eps": json.dumps([4 / 255, 8 / 255, 16 / 255])},
        {"defence": "jpeg", "norm": "Linf", "eps": 8 / 255, "clean": 0.9, "check_eps_sweep": "[0.8, 0.5]",
         "check_eps_sweep_eps": json.dumps([8 / 255, 16 / 255])},
        {"defence": "tvm", "norm": "L2", "eps": 0.5, "clean": 0.9, "check_eps_sweep": "", "check_eps_sweep_eps": ""}])


def test_robust_accuracy_has_one_curve_per_checked_defence_from_eps_zero():
    fig = figures.robust_accuracy(adaptive_rows(), ["none (victim alone)", "jpeg", "tvm"])
    curves = [line for line in fig.axes[0].get_lines() if line.get_label() in ("none (victim alone)", "jpeg")]
    assert len(fig.axes[0].get_legend().get_texts()) == 2  # the unchecked row has no sweep: no curve
    victim, jpeg = curves
    np.testing.assert_allclose(victim.get_xdata(), [0, 4, 8, 16])
    np.testing.assert_allclose(victim.get_ydata(), [100, 60, 20, 0])
    assert victim.get_linestyle() == "--" and jpeg.get_linestyle() == "-"
    np.testing.assert_allclose(jpeg.get_xdata(), [0, 8, 16])
    figures.png(fig)


def test_png_bytes_are_stable_and_carry_no_software_stamp():
    def draw():
        return figures.png(figures.training({"victim": {"victim": pd.DataFrame({"epoch": [1, 2], "loss": [2.0, 1.0]})}}))

    first = draw()
    assert first == draw() and first.startswith(b"\x89PNG") and b"matplotlib" not in first


def test_training_has_one_panel_per_trainer_and_one_line_per_run():
    history = pd.DataFrame({"epoch": [1, 2, 3], "loss": [3.0, 2.0, 1.0]})
    fig = figures.training({"victim": {"victim": history, "victim_robust": history}, "CAE (eq. 1)": {"default": history}})
    assert [ax.get_title() for ax in fig.axes] == ["victim", "CAE (eq. 1)"]
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 1]


def test_ablation_heatmap_and_depth_curves_show_the_table():
    table = pd.DataFrame({"recovery.cae.default.lambda1": [0.1, 0.1, 0.01, 0.01],
                          "recovery.aae.default.lambda2": [0.1, 0.01, 0.1, 0.01], "seen.cae_aae.average": [0.1, 0.2, 0.3, 0.4]})
    fig = figures.ablation_lambda(table, "seen.cae_aae.average")
    np.testing.assert_allclose(fig.axes[0].get_images()[0].get_array(), [[40, 30], [20, 10]])  # rows lambda1, cols lambda2
    depth = pd.DataFrame({"recovery.cae.default.widths": ["[1, 2]", "[1, 2]", "[1, 2, 3]"],
                          "recovery.aae.default.widths": ["[1, 2]", "[1, 2, 3]", "[1, 2]"], "seen.cae_aae.average": [0.5, 0.6, 0.7]})
    fig = figures.ablation_depth(depth, "seen.cae_aae.average")
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in fig.axes[0].get_lines()}
    assert lines == {"CAE 2 layers": ([2, 3], [50.0, 60.0]), "CAE 3 layers": ([2], [70.0])}


class Constant(torch.nn.Module):
    """A classifier that always answers class ``k``; a defence that recovers every image to grey."""

    def __init__(self, k: int):
        super().__init__()
        self.k, self.classifier = k, None

    def forward(self, x):
        return torch.nn.functional.one_hot(torch.full((len(x),), self.k), 3).float()

    def recover(self, x):
        return torch.full_like(x, 0.5)


def test_grid_columns_and_predictions_come_from_the_classifier_behind_each_column():
    rows = grid.rows(50, 4, seed=0)
    assert list(rows) == sorted(set(rows)) and len(rows) == 4 and (rows == grid.rows(50, 4, seed=0)).all()
    clean = torch.rand(2, 3, 8, 8)
    cols = grid.columns(clean=clean, attacked={"pgd": clean * 0.5}, victim=Constant(1), defences={"grey": Constant(2)},
                        attack="pgd", device="cpu", seed=0)
    assert [c.title for c in cols] == ["clean", "pgd", "pgd \u2192 grey"]
    assert (cols[2].images == 0.5).all() and list(cols[2].predictions) == [1, 1]  # answered by the victim
    fig = grid.figure(cols, np.array([1, 0]), ["a", "b", "c"])
    assert len(fig.axes) == 2 * 3 and [ax.get_title() for ax in fig.axes[:3]] == [c.title for c in cols]
    labels = [ax.xaxis.label for ax in fig.axes]  # row-major: the prediction under each cell
    assert [label.get_text() for label in labels] == ["b"] * 6
    assert [label.get_color() for label in labels] == ["green"] * 3 + ["red"] * 3  # every answer 1: row 0 (label 1) right, row 1 wrong
    figures.png(fig)


@pytest.mark.parametrize("n", [1, 7])
def test_grid_rows_never_exceed_the_pool(n):
    assert len(grid.rows(5, n, seed=3)) == min(n, 5)
