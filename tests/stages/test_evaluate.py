"""Stage evaluate: the protocols and the table layout (the real run is in test_pipeline)."""

from __future__ import annotations

import pytest

from advrecover.stages import evaluate

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


def fake_cell(name, train_set, column):
    """Accuracy encodes which model met which column, so the test can read the pairing back."""
    value = {"none": 0.1, "cae_aae": 0.5}[name] + (0.01 if train_set == column else 0)
    return {"n": 10, "accuracy": value, "recovery_rate": value, "recovery_ratio": 0.5, "psnr": 20.0,
            "ssim": 0.5, "psnr_to_input": 30.0}


DEFENCES = {"none": {"method": "none"}, "cae_aae": {"method": "cae_aae", "variant": "default"}}


def test_seen_rows_use_the_column_attack_and_add_a_mixed_row():
    rows = evaluate.table_rows("seen", DEFENCES, ["fgsm", "pgd"], ["fgsm", "pgd"], 0, fake_cell)
    by = {(r["defence"], r["column"]): r for r in rows}
    assert by["cae_aae", "fgsm"]["train_set"] == "fgsm" and by["cae_aae", "fgsm"]["accuracy"] == pytest.approx(0.51)
    assert by["cae_aae", "clean"]["train_set"] == "fgsm+pgd"
    assert by["cae_aae (mixed)", "pgd"]["train_set"] == "mixed"
    assert by["none", "pgd"]["train_set"] == "" and by["none", "clean"]["accuracy"] == 0.1
    assert {r["defence"] for r in rows} == {"none", "cae_aae", "cae_aae (mixed)"}


def test_unseen_rows_never_use_the_column_attack():
    rows = evaluate.table_rows("unseen", DEFENCES, ATTACKS, ATTACKS, 0, fake_cell)
    cells = [r for r in rows if r["defence"] == "cae_aae" and r["column"] != "clean"]
    assert len(cells) == len(ATTACKS)
    assert all(r["train_set"] != r["column"] and r["accuracy"] == 0.5 for r in cells)


def test_markdown_is_shaped_like_table_ii():
    import pandas as pd

    rows = evaluate.table_rows("seen", DEFENCES, ["fgsm", "pgd"], ["fgsm", "pgd"], 0, fake_cell)
    text = evaluate.markdown(pd.DataFrame(rows), ["fgsm", "pgd"], "Seen")
    header = next(line for line in text.splitlines() if line.startswith("| defence"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["defence", "Clean", "fgsm", "pgd", "Average"]
    none_row = next(line for line in text.splitlines() if line.startswith("| none"))
    assert [c.strip() for c in none_row.strip("|").split("|")][1:] == ["10.0", "10.0", "10.0", "10.0"]
