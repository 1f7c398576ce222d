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


@pytest.mark.parametrize("k, n", [(500, 500), (0, 500), (38, 64), (1, 3), (31, 32)])
def test_the_exact_interval_is_clopper_pearson(k, n):
    """Equal to scipy's exact binomial interval, and to the beta quantiles it is defined by."""
    from scipy.stats import beta, binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert M.exact_ci(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)
    low = beta.ppf(0.025, k, n - k + 1) if k else 0.0
    high = beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
    assert M.exact_ci(k, n) == pytest.approx((low, high), abs=1e-9)


def test_the_exact_interval_is_right_where_a_bootstrap_collapses():
    assert M.exact_ci(500, 500)[0] == pytest.approx(0.99265, abs=1e-5) and M.exact_ci(500, 500)[1] == 1.0
    assert M.bootstrap_ci(np.ones(500), 0) == (1.0, 1.0)  # the percentile bootstrap's point
    assert M.interval(np.ones(500), 0) == M.exact_ci(500, 500)  # binary outcomes get the exact one
    fractions = np.random.default_rng(0).uniform(size=50)
    assert M.interval(fractions, 0) == M.bootstrap_ci(fractions, 0)  # a mean of fractions keeps the bootstrap


def test_mcnemar_is_the_exact_binomial_test_of_the_discordant_pairs():
    from scipy.stats import binom, binomtest

    rng = np.random.default_rng(1)
    a = rng.uniform(size=200) < 0.6
    b = a.copy()
    b[rng.choice(200, 30, replace=False)] ^= True  # 30 images change, mostly one way for this seed
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    expected = min(1.0, 2 * binom.cdf(min(only_a, only_b), only_a + only_b, 0.5))
    assert M.mcnemar(a, b) == pytest.approx(expected, rel=1e-9)
    assert M.mcnemar(a, b) == pytest.approx(binomtest(only_a, only_a + only_b, 0.5).pvalue, rel=1e-12)
    assert M.mcnemar(a, a) == 1.0
    assert M.mcnemar(np.ones(10, bool), np.zeros(10, bool)) == pytest.approx(2 * 0.5 ** 10)


def test_images_a_paired_difference_needs():
    """Connor's sample size grows with the share of images on which two defences disagree."""
    n = {d: M.mcnemar_images(0.05, d) for d in (0.05, 0.10, 0.20)}
    assert n[0.05] < n[0.10] < n[0.20]
    assert 300 <= n[0.10] <= 320  # (1.96 sqrt(0.1) + 0.84 sqrt(0.0975))^2 / 0.05^2 = 311
