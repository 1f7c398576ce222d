"""The judgement of a random defence, on constructed defences of known odds: robust only if every
one of K fresh draws is right (about q^K, not q), in the batches it was attacked in; every image
attacked; the worst case over everything in budget; detection over perturbed images only; the
checks on their own subset; the cascade's per-image worst case equal to the full run's."""

from __future__ import annotations

import numpy as np
import torch

from advrecover import metrics as M
from advrecover.adaptive import outcomes as O
from advrecover.stages.adaptive import Data, attack_model, batches
from advrecover.stages.adaptive_merge import detection

from adaptive.constructed import LINF, Blackout, Coin, EncodedVictim, Quantise, Recorder, attacker, batch, everything

APGD = {"method": "apgd", "loss": "ce", "steps": 3}
SQUARE = {"method": "square", "n_queries": 20}


def encoded(n: int):
    """``n`` noise images whose first pixel encodes their class (for :class:`EncodedVictim`)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 8, 8, generator=g)
    y = torch.arange(n) % 10
    x[:, 0, 0, 0] = (y.float() + 0.5) / 10
    return x, y


def test_a_random_defence_is_robust_only_if_every_draw_is_right():
    x, y = encoded(500)
    q, k = 0.9, 10
    judged = attacker((EncodedVictim(), x, y), Coin(q), random=True, draws=k).judge(x, y, 0)
    assert judged.correct.shape == (500, k)
    low, high = M.exact_ci(int(judged.robust.sum()), 500)
    assert low <= q ** k <= high  # about 0.35: the worst case over draws
    low, high = M.exact_ci(int(judged.correct.sum()), judged.correct.size)
    assert low <= q <= high  # the mean over draws is what one draw reports
    one = attacker((EncodedVictim(), x, y), Coin(q), random=True, draws=1).judge(x, y, 0)
    assert one.robust.mean() > q - 0.05 > 2 * judged.robust.mean()  # a single draw would call it robust


def test_a_deterministic_defence_is_judged_once():
    x, y = encoded(20)
    judged = attacker((EncodedVictim(), x, y), Coin(1.0), random=False, draws=10).judge(x, y, 0)
    assert judged.correct.shape == (20, 1) and judged.robust.all()


def test_every_image_of_a_random_defence_is_attacked(victim_and_images):
    """APGD and Square skip the images their first forward pass gets wrong; under a random defence
    that is one draw's answer, so the stage attacks every image (and the skipping form would not)."""
    _, x, y = victim_and_images
    every = np.ones(len(x), dtype=bool)
    att = attacker(victim_and_images, Blackout(0.5), random=True, attacks={"apgd": APGD, "square": SQUARE})
    for spec in (APGD, SQUARE):
        adv = att.attack("full", spec, LINF, batch(x, y), every)
        assert (O.norms(x, adv, "Linf") > 0).all()
    skipping = attacker(victim_and_images, Blackout(0.5), random=False)
    adv = skipping.attack("full", APGD, LINF, batch(x, y), every)
    assert (O.norms(x, adv, "Linf") == 0).any()  # what the test guards against


def test_a_batch_dependent_defence_is_judged_in_its_attack_batches(victim_and_images):
    """Every unit attacks and judges the same images together: the batches of ``batch_size`` (and,
    in the cascade, the images of a batch still robust), never a mix of two batches."""
    model, x, y = victim_and_images
    n, spacing = 8, 0.14  # markers 0.14 apart: a 16/255 budget cannot move one into another
    x = x[:n].clone()
    x[:, 0, 0, 0] = torch.arange(n) * spacing
    recorder = Recorder(spacing)
    att = attacker((model, x, y[:n]), recorder, random=True, draws=2, batch_size=3, attacks={"apgd": APGD},
                   checks_n=1)  # the unbounded check moves its one image's marker anywhere
    data = Data(x, y[:n], {}, x[:4], np.arange(n))
    parts = batches(data, att.cfg, 0, 0)
    assert [list(b.index) for b in parts] == [[0, 1, 2], [3, 4, 5], [6, 7]]
    attack_model(att, None, "", parts)
    seen = set(recorder.batches)
    assert {frozenset({0, 1, 2}), frozenset({3, 4, 5}), frozenset({6, 7})} <= seen
    assert all(any(s <= frozenset(b.index) for b in parts) for s in seen if len(s) > 1), seen  # no call mixes two


def test_the_worst_case_ands_every_run_and_each_draw():
    judged = O.Judged(np.array([[True, True], [True, False], [True, True]]), np.zeros((3, 2), dtype=int))
    none = np.zeros(3, dtype=bool)
    clean = O.Run("clean", "", "clean", 0.0, np.zeros(3), np.ones(3, bool), judged, none)
    outside = O.Run("transfer", "", "cw", 0.03, np.full(3, 0.5), np.array([False, True, True]),
                    O.Judged(np.array([[False, False], [True, True], [False, True]]), np.zeros((3, 2), dtype=int)), none)
    assert list(O.all_of([outside], clean)) == [True, False, False]  # image 0 lies outside the budget
    assert O.mean_over_draws([outside], clean) == (2 + 1 + 1) / 6


def test_transfer_images_outside_the_ball_are_not_judged(victim_and_images):
    """A transfer image outside the threat model's ball counts as robust in every figure, so the
    stage spends no defended answer on it (prediction -1 in the records); the transfer figure is
    the one judging every image gives."""
    _, x, y = victim_and_images
    far = x.clone()
    far[::2] = 1 - far[::2]  # every other image far outside the 16/255 ball
    far[1::2] = (far[1::2] + LINF["eps"] / 2).clamp(0, 1)
    att = attacker(victim_and_images, Blackout(0.0))
    row, runs = everything(att, x, y, transfer={"far": far})
    run, clean = next(r for r in runs if r.kind == "transfer"), next(r for r in runs if r.kind == "clean")
    inside = O.norms(x, far, "Linf") <= LINF["eps"]
    assert list(inside) == [i % 2 == 1 for i in range(len(x))]
    assert (run.judged.pred[~inside] == -1).all() and (run.judged.pred[inside] >= 0).all()
    every = att.judge(far, y, 0).robust | ~inside
    assert 0 < row["transfer"] == (clean.ok & every).mean() < row["clean"]


def test_detection_counts_only_perturbed_images():
    """An image the attack left unchanged is no attacked image: flagged or not, it does not count."""
    run = O.Run("attack", "full", "apgd", 0.03, np.array([0.0, 0.03, 0.03, 0.03]), np.ones(4, bool),
                O.Judged(np.array([[True], [False], [False], [True]]), np.zeros((4, 1), dtype=int)),
                np.array([True, True, False, False]))
    figures = detection("adaptive", run, np.ones(4, bool))
    assert figures["dr_adaptive"] == 1 / 3  # of the three perturbed images, one flagged
    assert figures["joint_adaptive"] == 1 / 4  # misclassified and not flagged: image 2


def test_the_checks_run_on_their_own_subset_and_count_only_there(victim_and_images):
    """``adaptive.checks.n``: the check runs attack a seeded subset; the other images are not
    attacked by them (outside their count, prediction -1 in the records) and their figures are
    taken on the subset alone."""
    _, x, y = victim_and_images
    only = np.arange(len(x)) % 3 == 0
    row, runs = everything(attacker(victim_and_images, Blackout(0.0), attacks={"apgd": APGD}), x, y, checked=only)
    checks = [r for r in runs if r.kind == "check"]
    assert row["check_n"] == only.sum() == 16 and {r.attack for r in checks} >= {"unbounded", "sweep_0.5"}
    for run in checks:
        assert not run.inside[~only].any() and (run.judged.pred[~only] == -1).all()
        assert (run.norms[~only] == 0).all()
        assert run.ok[~only].all()  # an image a check did not attack does not count against the row
    pgd = [r for r in checks if r.attack == "unbounded" or r.attack.startswith("sweep")]  # on every checked image
    records = O.records(pgd, np.arange(len(only)), "", "linf")
    assert set(records.loc[records["prediction"] == -1, "image"]) == set(np.flatnonzero(~only))


def test_the_cascade_leaves_the_per_image_worst_case_of_a_deterministic_defence_unchanged(victim_and_images):
    """Each further attack of a route only on the images still robust: on deterministic defences the
    per-image worst case and every route's column equal those of the full run (every attack on every
    image), with fewer forward passes. One image per batch, so each attack sees the same inputs in
    both runs (with more, an attack's random start depends on which images share its batch)."""
    model, x, y = victim_and_images
    attacks = {"apgd": APGD, "pgd": {"method": "pgd", "steps": 3}, "square": SQUARE}
    for defence in (Quantise(16), Blackout(0.0)):
        rows, worst = {}, {}
        for cascade in (True, False):
            att = attacker(victim_and_images, defence, attacks=attacks, batch_size=1, cascade=cascade, checks_n=1)
            data = Data(x, y, {}, x[:4], np.arange(len(x)))
            frames, totals = attack_model(att, None, "", batches(data, att.cfg, 0, 0))
            runs = O.from_records(frames[0])
            in_budget = [r for r in runs if r.kind != "clean" and r.kind != "check"]
            worst[cascade] = O.all_of(in_budget, runs[0])
            rows[cascade] = totals["threats"]["linf"]["forwards"]
        assert np.array_equal(worst[True], worst[False]) and 0 < worst[True].mean() < 1
        assert rows[True] < rows[False]
