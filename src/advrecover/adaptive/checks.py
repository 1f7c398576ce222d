"""Sanity checks of an adaptive evaluation (Carlini et al. 2019, "On evaluating adversarial
robustness"; Croce et al. 2022): each takes accuracies measured by the adaptive stage and
returns the flag it raises, or None. A flagged defence is marked in the table, not dropped."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Checks:
    """``adaptive.checks``: PGD ``steps`` of the check attacks (doubled for the convergence
    check), the ``eps_sweep`` (multiples of the threat's eps), the ``unbounded_eps`` and the
    accuracy it must reach (``unbounded_max_accuracy``), the largest drop doubling the steps may
    cause (``steps_margin``), and the ``tolerance`` for noise in the other comparisons."""

    steps: int
    eps_sweep: tuple[float, ...]
    unbounded_eps: float
    unbounded_max_accuracy: float
    steps_margin: float
    tolerance: float


def unbounded(accuracy: float, cfg: Checks) -> str | None:
    """With an unbounded budget every input can be replaced: accuracy must fall to (near) 0."""
    return None if accuracy <= cfg.unbounded_max_accuracy else "unbounded_not_zero"


def monotone(accuracies: list[float], cfg: Checks) -> str | None:
    """Accuracy must not rise as eps grows (``accuracies`` in increasing eps order)."""
    rising = any(b > a + cfg.tolerance for a, b in zip(accuracies, accuracies[1:]))
    return "rises_with_eps" if rising else None


def converged(accuracy: float, doubled: float, cfg: Checks) -> str | None:
    """Doubling the steps (or EOT samples) must lower accuracy by less than ``steps_margin``."""
    return "not_converged" if accuracy - doubled > cfg.steps_margin else None


def weak_routes(route_accuracy: dict[str, float], transfer: float, cfg: Checks) -> list[str]:
    """A route that ends above the transfer accuracy is a weak attack (the worst case still counts both)."""
    return [f"weak_{route}" for route, acc in route_accuracy.items() if acc > transfer + cfg.tolerance]


def gradient(route: str, zero_share: float) -> str | None:
    """The input gradient through ``route`` must be non-zero: most images with an exactly zero
    gradient mean gradient masking (the route's figures are then meaningless)."""
    return f"zero_gradient_{route}" if zero_share > 0.5 else None
