"""The judgement of a random defence, on constructed defences of known odds: robust only if every
one of K fresh draws is right (about q^K, not q), in the batches it was attacked in; every image
attacked; the worst case over everything in budget; detection over perturbed images only."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from advrecover import metrics as M
from advrecover.adaptive import outcomes as O
from advrecover.stages.adaptive import attack_runs, detection_figures

from adaptive.constructed import LINF, Blackout, Coin, EncodedVictim, Recorder, attacker

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
    judged = attacker((EncodedVictim(), x, y), Coin(q), random=True, draws=k).judge(x)
    assert judged.correct.shape == (500, k)
    low, high = M.exact_ci(int(judged.robust.sum()), 500)
    assert low <= q ** k <= high  # about 0.35: the worst case over draws
    low, high = M.exact_ci(int(judged.correct.sum()), judged.correct.size)
    assert low <= q <= high  # the mean over draws is what one draw reports
    one = attacker((EncodedVictim(), x, y), Coin(q), random=True, draws=1).judge(x)
    assert one.robust.mean() > q - 0.05 > 2 * judged.robust.mean()  # a single draw would call it robust


def test_a_deterministic_defence_is_judged_once():
    x, y = encoded(20)
    judged = attacker((EncodedVictim(), x, y), Coin(1.0), random=False, draws=10).judge(x)
    assert judged.correct.shape == (20, 1) and judged.robust.all()


def test_every_image_of_a_random_defence_is_attacked(victim_and_images):
    """APGD and Square skip the images their first forward pass gets wrong; under a random defence
    that is one draw's answer, so the stage attacks every image (and the skipping form would not)."""
    att = attacker(victim_and_images, Blackout(0.5), random=True, attacks={"apgd": APGD, "square": SQUARE})
    for spec in (APGD, SQUARE):
        adv = att.attack("full", spec, LINF)
        assert (O.norms(att.data.x, adv, "Linf") > 0).all()
    skipping = attacker(victim_and_images, Blackout(0.5), random=False)
    adv = skipping.attack("full", APGD, LINF)
    assert (O.norms(skipping.data.x, adv, "Linf") == 0).any()  # what the test guards against


def test_a_batch_dependent_defence_is_judged_in_its_attack_batches(victim_and_images):
    model, x, y = victim_and_images
    n, spacing = 20, 0.05  # markers 0.05 apart: a 16/255 budget cannot move one into another
    x = x[:n].clone()
    x[:, 0, 0, 0] = torch.arange(n) * spacing
    recorder = Recorder(spacing)
    att = attacker((model, x, y[:n]), recorder, random=True, draws=2, batch_size=8, attacks={"apgd": APGD})
    att.attack("full", APGD, LINF)
    attacked = set(recorder.batches)
    recorder.batches.clear()
    att.judge(x)
    assert set(recorder.batches) <= attacked and set(recorder.batches) == {
        frozenset(range(0, 8)), frozenset(range(8, 16)), frozenset(range(16, 20))}


def test_the_worst_case_ands_every_run_and_each_draw():
    judged = O.Judged(np.array([[True, True], [True, False], [True, True]]), np.zeros((3, 2), dtype=int))
    clean = O.Run("clean", "", "clean", 0.0, np.zeros(3), np.ones(3, bool), judged)
    outside = O.Run("transfer", "", "cw", 0.03, np.full(3, 0.5), np.array([False, True, True]),
                    O.Judged(np.array([[False, False], [True, True], [False, True]]), np.zeros((3, 2), dtype=int)))
    assert list(O.all_of([outside], clean)) == [True, False, False]  # image 0 lies outside the budget
    assert O.mean_over_draws([outside], clean) == (2 + 1 + 1) / 6


def test_detection_counts_only_perturbed_images():
    """An image the attack left unchanged is no attacked image: flagged or not, it does not count."""
    scores = np.array([5.0, 5.0, 0.0, 0.0])  # the first two flagged at a threshold of 1
    att = SimpleNamespace(scores=lambda images: scores, clean=SimpleNamespace(ok=np.ones(4, bool)))
    run = O.Run("attack", "full", "apgd", 0.03, np.array([0.0, 0.03, 0.03, 0.03]), np.ones(4, bool),
                O.Judged(np.array([[True], [False], [False], [True]]), np.zeros((4, 1), dtype=int)))
    figures = detection_figures(att, {"adaptive": run}, {"adaptive": None}, 1.0)
    assert figures["dr_adaptive"] == 1 / 3  # of the three perturbed images, one flagged
    assert figures["joint_adaptive"] == 1 / 4  # misclassified and not flagged: image 2


def test_the_checks_run_on_their_own_subset_and_count_only_there(victim_and_images):
    """``adaptive.checks.n``: the check runs attack a seeded subset; the other images are not
    attacked by them (outside their count, prediction -1 in the records) and their figures are
    taken on the subset alone."""
    import dataclasses

    from advrecover.stages.adaptive import check_runs

    att = attacker(victim_and_images, Blackout(0.0), attacks={"apgd": APGD})
    att.cfg = dataclasses.replace(att.cfg, checks=dataclasses.replace(att.cfg.checks, n=16))
    runs, _ = attack_runs(att, LINF)
    checked, figures, only = check_runs(att, "full", LINF, runs[0])
    assert only.sum() == figures["check_n"] == 16
    for run in checked.values():
        assert not run.inside[~only].any() and (run.judged.pred[~only] == -1).all()
        assert (run.norms[~only] == 0).all()
        assert run.ok[~only].all()  # an image a check did not attack does not count against the row
    records = O.records(list(checked.values()), np.arange(len(only)), "", "linf")
    assert set(records.loc[records["prediction"] == -1, "image"]) == set(np.flatnonzero(~only))
