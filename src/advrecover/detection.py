"""Detect attacked inputs from how much the defence changes them (Li, Angelov and Suri's
detection rate, "DR" of their Table III).

The score of an input is the L2 distance between it and its recovery, ||x - recover(x)||_2: a
recovery model trained to map attacked images back moves them further than clean ones. The
threshold is the (1 - fpr) quantile of the scores of clean images in a held-out calibration
split of the evaluated pool, so at most a share ``fpr`` of clean images is flagged; the
detection rate of an attack is the share of its images (outside the calibration split) whose
score exceeds the threshold.
"""

from __future__ import annotations

import numpy as np
import torch


def split(n: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted row indices (calibration, evaluation) of an ``n``-image pool: a seeded ``share`` calibrates."""
    order = np.random.default_rng([seed, n]).permutation(n)
    k = int(round(share * n))
    return np.sort(order[:k]), np.sort(order[k:])


def scores(x: torch.Tensor, recovered: torch.Tensor) -> np.ndarray:
    """Per-image ||x - recover(x)||_2 (pixels in [0, 1])."""
    return (x - recovered).flatten(1).norm(dim=1).detach().cpu().numpy().astype(np.float64)


def threshold(clean_scores: np.ndarray, fpr: float) -> float:
    """The score above which an input is flagged: the (1 - fpr) quantile of clean scores."""
    if not len(clean_scores):
        raise ValueError("detection: the calibration split is empty (evaluate.detection.calibration_share)")
    return float(np.quantile(clean_scores, 1 - fpr, method="higher"))


def rate(attacked_scores: np.ndarray, limit: float) -> float:
    """Share of attacked images flagged (score above ``limit``); NaN when there are none."""
    return float((attacked_scores > limit).mean()) if len(attacked_scores) else float("nan")
