"""Sanity checks of an adaptive evaluation (Carlini et al. 2019, "On evaluating adversarial
robustness"; Croce et al. 2022): each takes the per-image outcomes the adaptive stage measured
and returns the flag it raises, or None. A flagged defence is marked in the table, not dropped.

A comparison of two runs on the same images raises its flag only when the difference exceeds
the ``tolerance`` *and* the exact McNemar test of the paired outcomes finds it significant at
:data:`advrecover.metrics.SIGNIFICANCE` (:func:`differs`): at n = 64 one image is 1.6 points, and
a single image moving must not flag a defence. An accuracy compared with a bound (the unbounded
attack's) flags only when the bound lies below its exact 95% interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import metrics as M


@dataclass(frozen=True)
class Checks:
    """``adaptive.checks``: the ``n`` attacked images they run on (a seeded subset; 0 = all), PGD
    ``steps`` of the check attacks, the ``eps_sweep`` (multiples of the
    threat's eps), the accuracy an unbounded PGD must reach (``unbounded_max_accuracy``), the
    largest drop doubling the strongest attack's steps may cause (``steps_margin``), the
    ``tolerance`` of the other comparisons, and ``min_gradient_ratio``: the median input-gradient
    norm through a route over the bare classifier's, below which the route masks its gradient."""

    n: int
    steps: int
    eps_sweep: tuple[float, ...]
    unbounded_max_accuracy: float
    steps_margin: float
    tolerance: float
    min_gradient_ratio: float


def unbounded_eps(norm: str, shape: tuple[int, ...]) -> float:
    """A budget that reaches every image: Linf 1, L2 the diameter of the unit cube of ``shape``."""
    return 1.0 if norm == "Linf" else math.sqrt(math.prod(shape))


def differs(higher: np.ndarray, lower: np.ndarray, margin: float) -> bool:
    """Is the accuracy of ``higher`` above that of ``lower`` (paired boolean outcomes on the same
    images) by more than ``margin``, and significantly so (exact McNemar)?"""
    higher, lower = np.asarray(higher, dtype=bool), np.asarray(lower, dtype=bool)
    return higher.mean() - lower.mean() > margin and M.mcnemar(higher, lower) < M.SIGNIFICANCE


def unbounded(ok: np.ndarray, cfg: Checks) -> str | None:
    """With an unbounded budget every input can be replaced: accuracy must fall to (near) 0."""
    low, _ = M.exact_ci(int(np.sum(ok)), len(ok))
    return "unbounded_not_zero" if low > cfg.unbounded_max_accuracy else None


def monotone(sweep: list[np.ndarray], cfg: Checks) -> str | None:
    """Accuracy must not rise as eps grows (``sweep`` in increasing eps order)."""
    rising = any(differs(b, a, cfg.tolerance) for a, b in zip(sweep, sweep[1:]))
    return "rises_with_eps" if rising else None


def converged(ok: np.ndarray, doubled: np.ndarray, cfg: Checks) -> str | None:
    """Doubling the strongest attack's steps (or EOT samples) must not lower accuracy by more than
    ``steps_margin``."""
    return "not_converged" if differs(ok, doubled, cfg.steps_margin) else None


def weak_routes(routes: dict[str, np.ndarray], transfer: np.ndarray, cfg: Checks) -> list[str]:
    """A route that ends above the transfer images is a weak attack (the worst case still counts both)."""
    return [f"weak_{route}" for route, ok in routes.items() if differs(ok, transfer, cfg.tolerance)]


def gradient_free(after: np.ndarray, before: np.ndarray, cfg: Checks) -> str | None:
    """A black-box attack that breaks images every gradient attack left robust (``before``: robust
    to every gradient route and attack; ``after``: and to the black-box attack run on those) means
    the gradients are masked. AutoAttack's own check (Croce and Hein 2020): Square runs after the
    white-box attacks, on the points they left, and lowering the robust accuracy is the warning."""
    return "gradient_free_stronger" if differs(before, after, cfg.tolerance) else None


def gradient(route: str, norms: np.ndarray, reference: np.ndarray, cfg: Checks) -> str | None:
    """The input gradient through ``route`` must not vanish: most images exactly zero, or a median
    norm below ``min_gradient_ratio`` of the bare classifier's on the same images, is masking."""
    if np.mean(norms == 0) > 0.5:
        return f"zero_gradient_{route}"
    if np.median(norms) < cfg.min_gradient_ratio * np.median(reference):
        return f"small_gradient_{route}"
    return None
