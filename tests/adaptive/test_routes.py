"""Gradient routes: the identity defence changes nothing, BPDA breaks gradient masking, EOT beats
randomness. Thresholds come from the same model in the same test, never from stored figures."""

from __future__ import annotations

import json

import numpy as np
import torch

from advrecover import adaptive, defences, inference
from advrecover.adaptive import outcomes as O
from advrecover.adaptive.routes import Defended, routes_for

from adaptive.constructed import (LINF, PGD, Identity, InvertedQuantise, Quantise, RandomGradient, attacker, batch,
                                  everything, robust)


def accuracy(att, x, y, route):
    return float(robust(att, x, y, route).mean())


class VictimAlone(torch.nn.Module):
    """The bare victim under the project's one inference policy."""

    def __init__(self, victim):
        super().__init__()
        self.victim = victim

    def forward(self, x):
        return inference.logits(self.victim, x)


def test_identity_defence_equals_the_victim_alone(victim_and_images):
    """The ``none`` defence, attacked through the adaptive machinery, gives the very images (and so
    the accuracy) that the same attack with the same seed gives on the victim alone."""
    model, x, y = victim_and_images
    victim = inference.prepare(model, "cpu")
    identity = defences.build({"method": "none"}, ".")
    for spec in (PGD, {"method": "apgd", "loss": "dlr", "steps": 5}):
        torch.manual_seed(0)
        alone = adaptive.build(spec, VictimAlone(victim), "Linf", 8 / 255)(x, y)
        torch.manual_seed(0)
        defended = adaptive.build(spec, Defended(victim, identity, "full"), "Linf", 8 / 255)(x, y)
        assert torch.equal(alone, defended)
        with torch.no_grad():
            assert torch.equal(VictimAlone(victim)(alone).argmax(1), Defended(victim, identity)(defended).argmax(1))


def test_gradient_masking_resists_the_exact_gradient_but_falls_to_bpda(victim_and_images):
    _, x, y = victim_and_images
    att = attacker(victim_and_images, Quantise(), differentiable=True)
    clean = float(att.judge(x, y, 0).robust.mean())
    full, bpda = accuracy(att, x, y, "full"), accuracy(att, x, y, "bpda")
    every = np.ones(len(x), dtype=bool)
    assert (att.gradient_norms(att.model("full"), batch(x, y), every) == 0).all()
    assert (att.gradient_norms(att.model("bpda"), batch(x, y), every) > 0).all()
    assert full > 0.8 * clean  # a zero gradient leaves PGD only its random start
    assert bpda < full / 2     # the identity backward finds what the masked gradient hides


def test_a_random_defence_needs_eot(victim_and_images):
    _, x, y = victim_and_images
    without = accuracy(attacker(victim_and_images, RandomGradient(), random=True, eot=1), x, y, "full")
    with_eot = accuracy(attacker(victim_and_images, RandomGradient(), random=True, eot=64), x, y, "full")
    exact = accuracy(attacker(victim_and_images, Identity()), x, y, "full")
    assert with_eot < without
    assert with_eot - exact < (without - exact) / 2  # EOT recovers most of the exact gradient's strength


def test_routes_follow_the_declared_traits():
    assert routes_for(differentiable=True, surrogate=False) == ["full", "bpda"]
    assert routes_for(differentiable=False, surrogate=True) == ["bpda", "bpda_surrogate"]


def test_the_stage_flags_a_masking_defence(victim_and_images):
    """Through the stage's own code: the exact route of a quantising defence is flagged twice,
    for its zero gradient and for ending above the transfer images (here: BPDA's images on the first
    half, the clean images on the other, a transfer column that fools many); BPDA is the strongest."""
    model, x, y = victim_and_images
    att = attacker(victim_and_images, Quantise())
    transfer = att.attack("bpda", PGD, LINF, batch(x, y), np.arange(len(x)) < len(x) // 2)
    row, _ = everything(att, x, y, transfer={"grey": transfer}, checked=np.ones(len(x), dtype=bool))
    flags = row["flags"].split()
    assert json.loads(row["check_zero_gradient"]) == {"full": 1.0, "bpda": 0.0}
    assert row["strongest"].endswith("via bpda")
    assert {"zero_gradient_full", "weak_full"} <= set(flags) and "zero_gradient_bpda" not in flags


def test_attacks_leave_the_victim_in_eval_mode_and_unchanged(victim_and_images):
    """torchattacks restores the training mode it found: the composite must be found in eval mode,
    or the victim's BatchNorm would run on batch statistics and drift after the first attack."""
    model, x, y = victim_and_images
    victim = inference.prepare(model, "cpu")
    before = {k: v.clone() for k, v in victim.state_dict().items()}
    composite = Defended(victim, defences.build({"method": "none"}, "."), "bpda")
    adaptive.build(PGD, composite, "Linf", 8 / 255)(x, y)
    assert not victim.training and not composite.training
    assert all(torch.equal(before[k], v) for k, v in victim.state_dict().items())


def flags_through_the_stage(victim_and_images, defence, classifier=None):
    """The flags the stage raises for ``defence`` (attacked with APGD through every route and Square)."""
    model, x, y = victim_and_images
    attacks = {"apgd": {"method": "apgd", "loss": "ce", "steps": 10},
               "square": {"method": "square", "n_queries": 300}}
    att = attacker((classifier or model, x, y), defence, attacks=attacks, cascade=False)
    row, runs = everything(att, x, y)
    return row["flags"].split(), runs


def test_square_beating_every_gradient_route_flags_masking(victim_and_images):
    """A defence that masks the exact gradient (quantisation) and misleads BPDA (an inversion its own
    classifier undoes) resists every gradient route; Square, which only queries, does not."""
    model = inference.prepare(victim_and_images[0], "cpu")
    defence = InvertedQuantise(model)
    flags, runs = flags_through_the_stage(victim_and_images, defence, defence.classifier)
    clean = runs[0]
    accuracy = {(r.route, r.attack): float((clean.ok & r.ok).mean()) for r in runs if r.kind != "clean"}
    square = float(O.all_of([r for r in runs if r.kind in ("attack", "gradient_free")], clean).mean())
    assert square < min(accuracy["full", "apgd"], accuracy["bpda", "apgd"]) - 0.2
    assert "gradient_free_stronger" in flags
    assert "gradient_free_stronger" not in flags_through_the_stage(victim_and_images, Identity())[0]
