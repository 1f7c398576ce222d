"""Recovery metrics of METHODS section 7, per image and aggregated over a test column.

Per image: whether the victim classifies the recovered image correctly, the share of
recovered pixels (every channel within ``tau`` of the clean image: the Decision behind 001's
"recovery ratio"), PSNR and SSIM to the clean image (scikit-image), and PSNR to the input, so
that an identity map (high PSNR to the input) or a collapse (low PSNR to both) is visible.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

PSNR_CAP = 100.0  # dB for identical images (PSNR is infinite there); keeps means finite
PIXEL_FIELDS = ("recovery_ratio", "psnr", "ssim", "psnr_to_input")


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


def aggregate(labels: np.ndarray, pred_clean: np.ndarray, pred_recovered: np.ndarray, pixels: dict) -> dict:
    """Column figures: accuracy on recovered images; recovery rate = among images the victim gets
    right when clean, the share it gets right after recovery; means of the pixel metrics."""
    correct = pred_recovered == labels
    clean_ok = pred_clean == labels
    return {"n": int(len(labels)),
            "accuracy": float(correct.mean()) if len(labels) else float("nan"),
            "recovery_rate": float(correct[clean_ok].mean()) if clean_ok.any() else float("nan"),
            **{k: float(np.mean(v)) if len(v) else float("nan") for k, v in pixels.items()}}
