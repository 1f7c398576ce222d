"""Recovery metrics of the evaluation, per image and aggregated over a test column.

Per image: whether the victim classifies the recovered image correctly, the share of
recovered pixels (every channel within ``tau`` of the clean image: our reading of Li et al.'s
"recovery ratio"), PSNR and SSIM to the clean image (scikit-image), and PSNR to the input, so
that an identity map (high PSNR to the input) or a collapse (low PSNR to both) is visible.
Every accuracy carries a 95% interval: the exact (Clopper and Pearson 1934) interval of a
binomial proportion where each image counts 0 or 1, a percentile bootstrap over the images
(Efron and Tibshirani 1993) where a figure averages fractions (a mean over models or draws).
Two defences measured on the same images are compared with the exact McNemar test (McNemar
1947; the binomial test on the discordant pairs), never by comparing their intervals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import binomtest, bootstrap, norm
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

PSNR_CAP = 100.0  # dB for identical images (PSNR is infinite there); keeps means finite
CLEAN = "clean"  # the column of unattacked images
PROTOCOLS = ("seen", "unseen")  # Li, Angelov and Suri's Tables II and III
AVERAGE = "average"  # the mean over a row's columns (Clean and the attacks), as in their Fig. 4 and 5
PIXEL_FIELDS = ("recovery_ratio", "psnr", "ssim", "psnr_to_input")
ACCURACIES = ("accuracy", "recovery_rate")  # the fields that get confidence intervals
CI_LEVEL, CI_RESAMPLES = 0.95, 2000
SIGNIFICANCE = 0.05  # the level of every paired test, and of the flags decided on one


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    if np.array_equal(a, b):
        return PSNR_CAP
    return min(PSNR_CAP, float(peak_signal_noise_ratio(a, b, data_range=1.0)))


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    side = min(a.shape[:2])
    if side < 3:  # no 3x3 window fits: SSIM is undefined
        return float("nan")
    win = min(7, side if side % 2 else side - 1)
    return float(structural_similarity(a, b, data_range=1.0, channel_axis=-1, win_size=win))


def per_image(clean: np.ndarray, inputs: np.ndarray, recovered: np.ndarray, tau: float) -> dict:
    """Pixel metrics of a batch (N, H, W, 3 float arrays in [0, 1]) as arrays of N values."""
    clean, inputs, recovered = (np.asarray(a, dtype=np.float64) for a in (clean, inputs, recovered))
    within = (np.abs(recovered - clean) <= tau + 1e-9).all(axis=-1)
    return {"recovery_ratio": within.reshape(len(clean), -1).mean(1),
            "psnr": np.array([_psnr(c, r) for c, r in zip(clean, recovered)]),
            "ssim": np.array([_ssim(c, r) for c, r in zip(clean, recovered)]),
            "psnr_to_input": np.array([_psnr(i, r) for i, r in zip(inputs, recovered)])}


@dataclass
class Scores:
    """Per-image results of one test column: ``correct`` is 1 where the victim classifies the
    recovered image correctly (a fraction where several models' results are averaged), ``clean_ok``
    where it classifies the clean image correctly, ``pixels`` the :func:`per_image` arrays,
    ``detected`` 1 where the detector flags the input (images outside its calibration split only),
    ``pred`` the classifier's answer on each recovered image (a single model's cell only)."""

    correct: np.ndarray
    clean_ok: np.ndarray
    pixels: dict
    detected: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pred: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @classmethod
    def mean(cls, many: list["Scores"]) -> "Scores":
        """Image-wise mean over models evaluated on the same images (Li et al.'s Clean column)."""
        return cls(np.mean([s.correct for s in many], axis=0), many[0].clean_ok,
                   {k: np.mean([s.pixels[k] for s in many], axis=0) for k in many[0].pixels},
                   np.mean([s.detected for s in many], axis=0))


def bootstrap_ci(values: np.ndarray, seed: int) -> tuple[float, float]:
    """The 95% percentile-bootstrap interval of the mean of ``values`` (NaN when empty; the value
    itself when every image agrees, where no resample can differ)."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return float("nan"), float("nan")
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    res = bootstrap((values,), np.mean, n_resamples=CI_RESAMPLES, confidence_level=CI_LEVEL, method="percentile",
                    vectorized=True, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def exact_ci(k: int, n: int) -> tuple[float, float]:
    """The exact 95% Clopper-Pearson interval of ``k`` successes in ``n`` trials (NaN when n is 0):
    right at 0 and 1, where a bootstrap collapses to a point."""
    if not n:
        return float("nan"), float("nan")
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=CI_LEVEL, method="exact")
    return float(ci.low), float(ci.high)


def interval(values: np.ndarray, seed: int) -> tuple[float, float]:
    """The 95% interval of a mean accuracy: exact where every value is 0 or 1, bootstrap otherwise."""
    values = np.asarray(values, dtype=np.float64)
    if np.isin(values, (0.0, 1.0)).all():
        return exact_ci(int(values.sum()), len(values))
    return bootstrap_ci(values, seed)


def accuracy_summary(frame) -> dict:
    """{row: {column: accuracy, "average": mean}} of one protocol's table (a DataFrame with ``defence``,
    ``column`` and ``accuracy``): the figures that metrics files and DVC experiments compare."""
    return {d: {**{r["column"]: round(float(r["accuracy"]), 6) for _, r in g.iterrows()},
                AVERAGE: round(float(g["accuracy"].mean()), 6)}
            for d, g in frame.groupby("defence", sort=False)}


def mcnemar(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided exact McNemar p-value of paired per-image outcomes ``a`` and ``b`` (booleans on
    the same images): the binomial test of the discordant pairs at 1/2 (1.0 when none differ)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def mcnemar_images(difference: float, discordant: float, power: float = 0.8) -> int:
    """Images a paired comparison needs to find ``difference`` in accuracy significant (two-sided,
    level :data:`SIGNIFICANCE`) with ``power``, when a share ``discordant`` of images differ between
    the two defences (Connor 1987's normal approximation of McNemar's test)."""
    za, zb = norm.ppf(1 - SIGNIFICANCE / 2), norm.ppf(power)
    root = za * np.sqrt(discordant) + zb * np.sqrt(discordant - difference ** 2)
    return int(np.ceil(root ** 2 / difference ** 2))


def summarise(scores: Scores, seed: int = 0) -> dict:
    """Column figures: accuracy on recovered images; recovery rate = among images the victim gets
    right when clean, the share it gets right after recovery (each with its :func:`interval`);
    means of the pixel metrics."""
    rate = scores.correct[scores.clean_ok]
    out = {"n": int(len(scores.correct))}
    for field, values in zip(ACCURACIES, (scores.correct, rate)):
        low, high = interval(values, seed)
        out.update({field: float(np.mean(values)) if len(values) else float("nan"),
                    f"{field}_ci_low": low, f"{field}_ci_high": high})
    out.update({k: float(np.mean(v)) if len(v) else float("nan") for k, v in scores.pixels.items()})
    out["detection_rate"] = float(np.mean(scores.detected)) if len(scores.detected) else float("nan")
    return out


def aggregate(labels: np.ndarray, pred_clean: np.ndarray, pred_recovered: np.ndarray, pixels: dict,
              seed: int = 0) -> dict:
    """:func:`summarise` of one model's predictions on a column."""
    return summarise(Scores((pred_recovered == labels).astype(np.float64), pred_clean == labels, pixels), seed)
