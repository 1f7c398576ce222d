"""Each sanity check passes a sound evaluation and fires on a case built to fail it; a difference
of one image, or one within the tolerance, raises no flag."""

from __future__ import annotations

import math

import numpy as np

from advrecover.adaptive import checks

CFG = checks.Checks(n=0, steps=10, eps_sweep=(0.5, 1.0, 2.0), unbounded_max_accuracy=0.05, steps_margin=0.05,
                    tolerance=0.02, min_gradient_ratio=0.01)


def outcomes(n: int, right: int, first: int = 0) -> np.ndarray:
    """``n`` per-image outcomes, images ``first`` .. ``first + right - 1`` right."""
    ok = np.zeros(n, dtype=bool)
    ok[first:first + right] = True
    return ok


def test_unbounded_budget_must_reach_zero():
    assert checks.unbounded(outcomes(64, 0), CFG) is None
    assert checks.unbounded(outcomes(64, 5), CFG) is None  # 7.8%, but 5% lies inside its exact interval
    assert checks.unbounded(outcomes(64, 20), CFG) == "unbounded_not_zero"


def test_the_unbounded_budget_reaches_every_image_in_its_norm():
    assert checks.unbounded_eps("Linf", (3, 32, 32)) == 1.0
    assert checks.unbounded_eps("L2", (3, 32, 32)) == math.sqrt(3 * 32 * 32)  # all-black to all-white


def test_accuracy_must_not_rise_with_eps():
    assert checks.monotone([outcomes(64, 50), outcomes(64, 30), outcomes(64, 5)], CFG) is None
    assert checks.monotone([outcomes(64, 50), outcomes(64, 51), outcomes(64, 5)], CFG) is None  # one image
    assert checks.monotone([outcomes(64, 50), outcomes(64, 20), outcomes(64, 45)], CFG) == "rises_with_eps"


def test_doubling_the_steps_must_not_change_much():
    assert checks.converged(outcomes(64, 30), outcomes(64, 28), CFG) is None
    assert checks.converged(outcomes(64, 30), outcomes(64, 26), CFG) is None  # 6 points, 4 images: p = 0.125
    assert checks.converged(outcomes(64, 30), outcomes(64, 15), CFG) == "not_converged"


def test_a_flag_needs_both_the_tolerance_and_significance():
    many = 2000  # 1.5 points over 30 images: significant, but within the tolerance
    assert not checks.differs(outcomes(many, 1030), outcomes(many, 1000), 0.02)
    assert checks.differs(outcomes(many, 1100), outcomes(many, 1000), 0.02)
    # the same 25-point gap on disjoint images of 8: not significant
    assert not checks.differs(outcomes(8, 4), outcomes(8, 2, first=4), 0.02)


def test_a_route_above_transfer_is_weak():
    transfer = outcomes(64, 40)
    routes = {"full": outcomes(64, 20), "bpda": outcomes(64, 40)}
    assert checks.weak_routes(routes, transfer, CFG) == []
    assert checks.weak_routes({**routes, "bpda": outcomes(64, 60)}, transfer, CFG) == ["weak_bpda"]


def test_square_breaking_what_every_gradient_attack_left_means_masked_gradients():
    gradient = outcomes(64, 45)  # robust to every gradient route and attack
    assert checks.gradient_free(outcomes(64, 10), gradient, CFG) == "gradient_free_stronger"
    assert checks.gradient_free(outcomes(64, 43), gradient, CFG) is None  # two images: within the noise
    assert checks.gradient_free(gradient, gradient, CFG) is None


def test_vanishing_or_zero_input_gradients_are_flagged():
    reference = np.full(64, 2.0)
    assert checks.gradient("full", np.full(64, 1.0), reference, CFG) is None
    assert checks.gradient("full", np.zeros(64), reference, CFG) == "zero_gradient_full"
    assert checks.gradient("full", np.full(64, 1e-5), reference, CFG) == "small_gradient_full"
