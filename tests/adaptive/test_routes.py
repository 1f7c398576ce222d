"""Gradient routes: the identity defence changes nothing, BPDA breaks gradient masking, EOT beats
randomness. Thresholds come from the same model in the same test, never from stored figures."""

from __future__ import annotations

import torch

from advrecover import adaptive, defences, inference
from advrecover.adaptive.routes import Defended, routes_for
from advrecover.stages.adaptive import AdaptiveConfig, Attacker, Data, DetectionAware
from advrecover.adaptive.checks import Checks

from adaptive.constructed import Identity, Quantise, RandomGradient

LINF = {"norm": "Linf", "eps": 16 / 255}
PGD = {"method": "pgd", "steps": 10}


def attacker(victim_and_images, defence, random=False, eot=1, differentiable=True):
    model, x, y = victim_and_images
    cfg = AdaptiveConfig(n=0, train_sets=("mixed",), batch_size=64, eot=eot, threats={"linf": LINF},
                         attacks={"pgd": PGD}, detection_aware=DetectionAware(steps=2, weight=1.0),
                         checks=Checks(steps=2, eps_sweep=(0.5, 1.0), unbounded_eps=1.0, unbounded_max_accuracy=0.05,
                                       steps_margin=0.05, tolerance=0.02))
    needs = {"differentiable": differentiable, "random": random, "surrogate": False}
    return Attacker(inference.prepare(model, "cpu"), defence, needs, Data(x, y, {}, x[:4]), cfg, 0, "cpu")


def accuracy(att, route):
    return float(att.correct(att.attack(route, PGD, LINF)).float().mean())


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
    att = attacker(victim_and_images, Quantise(), differentiable=True)
    clean = float(att.correct(att.data.x).float().mean())
    full, bpda = accuracy(att, "full"), accuracy(att, "bpda")
    assert att.zero_gradient_share("full") == 1.0 and att.zero_gradient_share("bpda") == 0.0
    assert full > 0.8 * clean  # a zero gradient leaves PGD only its random start
    assert bpda < full / 2     # the identity backward finds what the masked gradient hides


def test_a_random_defence_needs_eot(victim_and_images):
    without = accuracy(attacker(victim_and_images, RandomGradient(), random=True, eot=1), "full")
    with_eot = accuracy(attacker(victim_and_images, RandomGradient(), random=True, eot=64), "full")
    exact = accuracy(attacker(victim_and_images, Identity()), "full")
    assert with_eot < without
    assert with_eot - exact < (without - exact) / 2  # EOT recovers most of the exact gradient's strength


def test_routes_follow_the_declared_traits():
    assert routes_for(differentiable=True, surrogate=False) == ["full", "bpda"]
    assert routes_for(differentiable=False, surrogate=True) == ["bpda", "bpda_surrogate"]


def test_the_stage_flags_a_masking_defence(victim_and_images):
    """Through the stage's own code: the exact route of a quantising defence is flagged twice,
    for its zero gradient and for ending above the transfer accuracy (here: the clean accuracy,
    as no transfer image is given)."""
    from advrecover.stages.adaptive import check_flags, route_figures

    att = attacker(victim_and_images, Quantise())
    clean_ok = att.correct(att.data.x)
    robust, strongest = route_figures(att, clean_ok, LINF)
    transfer = float(clean_ok.float().mean()) - 0.5  # as if a transfer attack had reached this
    flags, figures = check_flags(att, strongest["route"], LINF, robust, transfer)
    assert figures["check_zero_gradient"] == {"full": 1.0, "bpda": 0.0}
    assert strongest["route"] == "bpda"
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
