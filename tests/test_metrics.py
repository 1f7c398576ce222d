"""The evaluation metrics (advrecover.metrics) on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest

from advrecover import metrics as M


def images(n=4, size=8, seed=0):
    return np.random.default_rng(seed).uniform(0.2, 0.8, (n, size, size, 3))


def test_a_perfect_recovery_scores_100_percent():
    clean = images()
    adv = np.clip(clean + 0.05, 0, 1)
    labels = np.array([0, 1, 2, 3])
    pixels = M.per_image(clean, adv, clean, tau=8 / 255)
    r = M.aggregate(labels, labels, labels, pixels)
    assert r["accuracy"] == r["recovery_rate"] == r["recovery_ratio"] == 1.0
    assert r["psnr"] == M.PSNR_CAP and r["ssim"] == pytest.approx(1.0)
    assert r["psnr_to_input"] < 30  # the recovery is far from the attacked input


def test_identity_defence_scores_the_no_defence_accuracy_and_is_visible_as_identity():
    clean = images()
    adv = np.clip(clean + 0.05, 0, 1)
    labels = np.array([0, 1, 2, 3])
    pred_clean = np.array([0, 1, 2, 0])  # the victim gets 3 of 4 clean images right
    pred_adv = np.array([0, 3, 3, 0])  # and 1 of 4 attacked ones
    r = M.aggregate(labels, pred_clean, pred_adv, M.per_image(clean, adv, adv, tau=8 / 255))
    assert r["accuracy"] == 0.25 and r["recovery_rate"] == pytest.approx(1 / 3)
    assert r["recovery_ratio"] == 0.0  # every pixel is 0.05 > 8/255 away
    assert r["psnr"] == pytest.approx(-10 * np.log10(0.05 ** 2), abs=0.05)
    assert r["psnr_to_input"] == M.PSNR_CAP


def test_recovery_ratio_needs_every_channel_within_tau():
    clean = np.zeros((1, 2, 2, 3))
    rec = clean.copy()
    rec[0, 0, 0, 2] = 0.1  # one channel of one pixel off
    rec[0, 1, 1, :] = 0.02  # all channels slightly off, within tau
    pixels = M.per_image(clean, rec, rec, tau=0.03)
    assert pixels["recovery_ratio"][0] == 0.75


def test_empty_columns_give_nan_not_errors():
    r = M.aggregate(np.zeros(0, int), np.zeros(0, int), np.zeros(0, int), {k: np.zeros(0) for k in M.PIXEL_FIELDS})
    assert r["n"] == 0 and np.isnan(r["accuracy"])
