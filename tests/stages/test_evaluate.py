"""Stages evaluate and tables: the protocols and the table layout (the real run is in test_pipeline and test_results)."""

from __future__ import annotations

import numpy as np
import pytest

from advrecover import metrics as M
from advrecover.stages import evaluate, tables

ATTACKS = ["fgsm", "pgd", "ssah", "deepfool", "bim", "cw", "jsma", "pgd_8"]


@pytest.mark.parametrize("seed", range(40))
def test_unseen_never_pairs_an_attack_with_itself(seed):
    pairs = evaluate.unseen_pairs(ATTACKS, ATTACKS, seed)
    assert set(pairs) == set(ATTACKS)
    assert all(train != column and train in ATTACKS for column, train in pairs.items())


def test_unseen_draw_is_seeded_and_varies():
    assert evaluate.unseen_pairs(ATTACKS, ATTACKS, 3) == evaluate.unseen_pairs(ATTACKS, ATTACKS, 3)
    draws = {tuple(evaluate.unseen_pairs(ATTACKS, ATTACKS, s).values()) for s in range(10)}
    assert len(draws) > 1


def test_unseen_needs_another_attack():
    with pytest.raises(ValueError, match="no training attack other than 'fgsm'"):
        evaluate.unseen_pairs(["fgsm"], ["fgsm"], 0)


def fake_cell(name):
    """Accuracy encodes which model met which column, so the test can read the pairing back."""

    def cell(train_set, column):
        value = {"none": 0.1, "cae_aae": 0.5}[name] + (0.01 if train_set == column else 0)
        pixels = {"recovery_ratio": np.full(10, 0.5), "psnr": np.full(10, 20.0), "ssim": np.full(10, 0.5),
                  "psnr_to_input": np.full(10, 30.0)}
        return M.Scores(np.full(10, value), np.ones(10, bool), pixels, np.full(5, 0.2))

    return cell


DEFENCES = {"none": {"method": "none"}, "cae_aae": {"method": "cae_aae", "variant": "default"}}


def rows_of(protocol, columns, train_on):
    return [r for name, spec in DEFENCES.items()
            for r in evaluate.table_rows(protocol, name, spec, columns, train_on, 0, fake_cell(name))]


def test_seen_rows_use_the_column_attack_and_add_a_mixed_row():
    rows = rows_of("seen", ["fgsm", "pgd"], ["fgsm", "pgd"])
    by = {(r["defence"], r["column"]): r for r in rows}
    assert by["cae_aae", "fgsm"]["train_set"] == "fgsm" and by["cae_aae", "fgsm"]["accuracy"] == pytest.approx(0.51)
    assert by["cae_aae", "clean"]["train_set"] == "fgsm+pgd"
    assert by["cae_aae (mixed)", "pgd"]["train_set"] == "mixed"
    assert by["none", "pgd"]["train_set"] == "" and by["none", "clean"]["accuracy"] == 0.1
    assert by["none", "pgd"]["detection_rate"] == pytest.approx(0.2)
    assert {r["defence"] for r in rows} == {"none", "cae_aae", "cae_aae (mixed)"}


def test_unseen_rows_never_use_the_column_attack():
    rows = rows_of("unseen", ATTACKS, ATTACKS)
    cells = [r for r in rows if r["defence"] == "cae_aae" and r["column"] != "clean"]
    assert len(cells) == len(ATTACKS)
    assert all(r["train_set"] != r["column"] and r["accuracy"] == 0.5 for r in cells)


def test_markdown_is_shaped_like_table_ii():
    import pandas as pd

    rows = rows_of("seen", ["fgsm", "pgd"], ["fgsm", "pgd"])
    text = tables.markdown(pd.DataFrame(rows), ["fgsm", "pgd"], "Seen")
    header = next(line for line in text.splitlines() if line.startswith("| defence"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["defence", "Clean", "fgsm", "pgd", "Average"]
    none_row = next(line for line in text.splitlines() if line.startswith("| none"))
    assert [c.strip() for c in none_row.strip("|").split("|")][1:] == ["10.0 [10.0, 10.0]"] * 3 + ["10.0"]


def test_markdown_shows_each_accuracy_with_its_interval():
    import pandas as pd

    correct = np.random.default_rng(0).random(200) < 0.7
    scores = M.Scores(correct.astype(float), np.ones(200, bool), {k: np.zeros(200) for k in M.PIXEL_FIELDS})
    rows = evaluate.table_rows("seen", "none", {"method": "none"}, ["fgsm"], ["fgsm"], 0, lambda *a: scores)
    row = rows[0]
    assert (row["accuracy_ci_low"], row["accuracy_ci_high"]) == M.exact_ci(int(correct.sum()), 200)  # 0 or 1 per image
    half = 50 * (row["accuracy_ci_high"] - row["accuracy_ci_low"])
    assert 4 < half < 9  # the normal approximation gives 1.96 * sqrt(0.7 * 0.3 / 200) = 6.4 points
    text = tables.markdown(pd.DataFrame(rows), ["fgsm"], "Seen")
    low, high = 100 * row["accuracy_ci_low"], 100 * row["accuracy_ci_high"]
    assert f"{100 * row['accuracy']:.1f} [{low:.1f}, {high:.1f}]" in text


def test_a_random_defence_gives_the_same_cell_whatever_ran_before():
    """evaluate_cell seeds torch: a random defence (EOT's kind) is reproducible run to run and order-free."""
    import torch

    from advrecover.defences import Defence

    class Noisy(Defence):
        def recover(self, x):
            return (x + 0.3 * torch.randn_like(x)).clamp(0, 1)

    victim = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3))
    x, labels = torch.rand(16, 3, 4, 4), np.arange(16) % 3
    runs = []
    for burn in (0, 5):
        torch.rand(burn)  # another cell consumed random numbers before this one
        scores, detection = evaluate.evaluate_cell(Noisy(), victim, x, x, labels, labels, 0.03, 8, "cpu", seed=3)
        runs.append((scores.correct, scores.pixels["psnr"], detection))
    assert all(np.array_equal(a, b) for a, b in zip(*runs))


def test_a_defence_with_its_own_classifier_is_scored_with_it(monkeypatch):
    """The adversarial-training row: its classifier (not the victim) answers, with its own clean
    predictions for the recovery rate, and the rows say so; the markdown marks them."""
    import pandas as pd
    import torch

    from advrecover.defences import Defence

    class Own(Defence):
        def __init__(self):
            super().__init__()
            self.classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3))

        def recover(self, x):
            return x

    victim = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3))
    x, labels = torch.rand(12, 3, 4, 4), np.arange(12) % 3
    data = evaluate.Inputs(x, {"clean": x}, labels, np.zeros(12, dtype=np.int64), np.arange(6), np.arange(6, 12))
    own = Own()
    cells = evaluate.Cells({"method": "own"}, "unused", victim, data, 0.03, 0.05, 4, "cpu", seed=0)
    monkeypatch.setattr(evaluate.defence_registry, "build", lambda spec, models_dir, train_set, victim: own)
    scores = cells(None, "clean")
    with torch.no_grad():
        expected = own.classifier(x).argmax(1).numpy()
    assert np.array_equal(scores.correct, (expected == labels).astype(float)) and cells.own_classifier
    assert np.array_equal(scores.clean_ok, expected == labels)  # its own clean answers, not the victim's
    frame = pd.DataFrame([{"protocol": "seen", "defence": "adv", "column": "clean", "classifier": "own",
                           **{k: 0.5 for k in ("accuracy", "accuracy_ci_low", "accuracy_ci_high", "recovery_rate",
                                               "recovery_rate_ci_low", "recovery_rate_ci_high", "recovery_ratio",
                                               "psnr", "ssim", "psnr_to_input", "detection_rate")}}])
    assert "adv (own classifier)" in tables.markdown(frame, [], "t") and "own classifier" in tables.OWN_NOTE

