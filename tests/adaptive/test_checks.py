"""Each sanity check passes a sound evaluation and fires on a case built to fail it."""

from __future__ import annotations

from advrecover.adaptive import checks

CFG = checks.Checks(steps=10, eps_sweep=(0.5, 1.0, 2.0), unbounded_eps=1.0, unbounded_max_accuracy=0.05,
                    steps_margin=0.05, tolerance=0.02)


def test_unbounded_budget_must_reach_zero():
    assert checks.unbounded(0.0, CFG) is None
    assert checks.unbounded(0.30, CFG) == "unbounded_not_zero"


def test_accuracy_must_not_rise_with_eps():
    assert checks.monotone([0.8, 0.5, 0.1], CFG) is None
    assert checks.monotone([0.8, 0.81, 0.1], CFG) is None  # within the tolerance
    assert checks.monotone([0.8, 0.5, 0.7], CFG) == "rises_with_eps"


def test_doubling_the_steps_must_not_change_much():
    assert checks.converged(0.40, 0.38, CFG) is None
    assert checks.converged(0.40, 0.20, CFG) == "not_converged"


def test_a_route_above_transfer_is_weak():
    assert checks.weak_routes({"full": 0.3, "bpda": 0.5}, transfer=0.6, cfg=CFG) == []
    assert checks.weak_routes({"full": 0.3, "bpda": 0.7}, transfer=0.6, cfg=CFG) == ["weak_bpda"]


def test_zero_input_gradient_is_flagged():
    assert checks.gradient("full", 0.0) is None
    assert checks.gradient("full", 1.0) == "zero_gradient_full"
