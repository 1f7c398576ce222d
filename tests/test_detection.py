"""The detector: a held-out calibration split, a threshold at the asked false-positive rate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advrecover import detection


def test_split_is_seeded_disjoint_and_complete():
    cal, rest = detection.split(100, 0.3, seed=0)
    assert len(cal) == 30 and len(rest) == 70 and not set(cal) & set(rest)
    assert sorted([*cal, *rest]) == list(range(100))
    assert np.array_equal(cal, detection.split(100, 0.3, seed=0)[0])
    assert not np.array_equal(cal, detection.split(100, 0.3, seed=1)[0])


def test_threshold_flags_at_most_the_asked_share_of_clean_images():
    clean = np.random.default_rng(0).random(1000)
    limit = detection.threshold(clean, fpr=0.05)
    assert detection.rate(clean, limit) <= 0.05
    assert detection.rate(clean + 1.0, limit) == 1.0
    with pytest.raises(ValueError, match="calibration split is empty"):
        detection.threshold(np.zeros(0), 0.05)


def test_score_is_the_l2_distance_to_the_recovery():
    x = torch.zeros(2, 3, 4, 4)
    rec = x.clone()
    rec[1, 0, 0, :] = 0.5
    assert np.allclose(detection.scores(x, rec), [0.0, 1.0])
