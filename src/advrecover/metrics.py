"""Recovery metrics of the evaluation, per image and aggregated over a test column.

Per image: whether the victim classifies the recovered image correctly, the share of
recovered pixels (every channel within ``tau`` of the clean image: our reading of Li et al.'s
"recovery ratio"), PSNR and SSIM to the clean image (scikit-image), and PSNR to the input, so
that an identity map (high PSNR to the input) or a collapse (low PSNR to both) is visible.
Every accuracy carries a 95% percentile-bootstrap confidence interval over the evaluated images
(Efron and Tibshirani 1993, through ``scipy.stats.bootstrap``): the noise a reader must allow for
when comparing two figures, or the same figure from another machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import bootstrap
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

PSNR_CAP = 100.0  # dB for identical images (PSNR is infinite there); keeps means finite
CLEAN = "clean"  # the column of unattacked images
PROTOCOLS = ("seen", "unseen")  # Li, Angelov and Suri's Tables II and III
PIXEL_FIELDS = ("recovery_ratio", "psnr", "ssim", "psnr_to_input")
ACCURACIES = ("accuracy", "recovery_rate")  # the fields that get confidence intervals
CI_LEVEL, CI_RESAMPLES = 0.95, 2000


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
    ``detected`` 1 where the detector flags the input (images outside its calibration split only)."""

    correct: np.ndarray
    clean_ok: np.ndarray
    pixels: dict
    detected: np.ndarray = field(default_factory=lambda: np.zeros(0))

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


def summarise(scores: Scores, seed: int = 0) -> dict:
    """Column figures: accuracy on recovered images; recovery rate = among images the victim gets
    right when clean, the share it gets right after recovery (each with its CI); means of the
    pixel metrics."""
    rate = scores.correct[scores.clean_ok]
    out = {"n": int(len(scores.correct))}
    for field, values in zip(ACCURACIES, (scores.correct, rate)):
        low, high = bootstrap_ci(values, seed)
        out.update({field: float(np.mean(values)) if len(values) else float("nan"),
                    f"{field}_ci_low": low, f"{field}_ci_high": high})
    out.update({k: float(np.mean(v)) if len(v) else float("nan") for k, v in scores.pixels.items()})
    out["detection_rate"] = float(np.mean(scores.detected)) if len(scores.detected) else float("nan")
    return out


def aggregate(labels: np.ndarray, pred_clean: np.ndarray, pred_recovered: np.ndarray, pixels: dict,
              seed: int = 0) -> dict:
    """:func:`summarise` of one model's predictions on a column."""
    return summarise(Scores((pred_recovered == labels).astype(np.float64), pred_clean == labels, pixels), seed)
