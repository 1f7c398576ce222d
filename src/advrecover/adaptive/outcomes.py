"""Per-image outcomes of the adaptive evaluation: every figure of a row is computed from these.

A :class:`Judged` holds, for each attacked image and each of K judgement draws of the defence,
whether the defended classifier answers correctly and what it answers. A random defence is
judged on K fresh draws and an image counts as robust only if every draw is right (Croce et al.
2022, Sec. 4: the worst case over draws); the mean over draws is reported beside it. A
deterministic defence has one draw. A :class:`Run` is one attack's images and their judgement;
the worst case of a row is the AND over the runs within the threat's budget, per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .. import metrics as M


@dataclass(frozen=True)
class Judged:
    """``correct`` and ``pred``: (n images, K draws) arrays of one set of images."""

    correct: np.ndarray
    pred: np.ndarray

    @property
    def robust(self) -> np.ndarray:
        """Per image: right in every draw."""
        return self.correct.all(axis=1)


@dataclass(frozen=True)
class Run:
    """One attack's outcome: ``kind`` (clean, transfer, attack, gradient_free, check,
    detection_aware), its ``route`` and ``attack`` names, its ``eps``, the per-image perturbation
    ``norms`` in the threat's norm, which images are ``inside`` the budget, and their judgement."""

    kind: str
    route: str
    attack: str
    eps: float
    norms: np.ndarray
    inside: np.ndarray
    judged: Judged

    @property
    def ok(self) -> np.ndarray:
        """Per image: robust to this run (an image outside the budget does not count against it)."""
        return self.judged.robust | ~self.inside

    @property
    def ok_per_draw(self) -> np.ndarray:
        return self.judged.correct | ~self.inside[:, None]


def norms(x: torch.Tensor, adv: torch.Tensor, norm: str) -> np.ndarray:
    """Per-image size of ``adv - x`` in ``norm`` (Linf or L2)."""
    delta = (adv - x).flatten(1)
    return (delta.abs().amax(1) if norm == "Linf" else delta.norm(dim=1)).double().numpy()


def all_of(runs: list[Run], clean: Run) -> np.ndarray:
    """Per image: robust clean and to every run."""
    ok = clean.ok.copy()
    for r in runs:
        ok &= r.ok
    return ok


def mean_over_draws(runs: list[Run], clean: Run) -> float:
    """The accuracy per draw (an image right clean and under every run in that draw), averaged over
    draws and images: what a single-draw evaluation reports on average."""
    ok = clean.ok_per_draw.copy()
    for r in runs:
        ok &= r.ok_per_draw
    return float(ok.mean()) if ok.size else float("nan")


def figure(name: str, ok: np.ndarray) -> dict:
    """``name`` (accuracy) with its exact 95% interval ``name_lo``, ``name_hi``."""
    low, high = M.exact_ci(int(ok.sum()), len(ok))
    return {name: float(ok.mean()) if len(ok) else float("nan"), f"{name}_lo": low, f"{name}_hi": high}


def records(runs: list[Run], images: np.ndarray, model: str, threat: str) -> pd.DataFrame:
    """One row per run x image x draw: the pool index of the image, whether it was in budget, whether
    the answer was correct, the prediction and the perturbation's norm."""
    frames = []
    for r in runs:
        n, k = r.judged.correct.shape
        frames.append(pd.DataFrame({
            "model": model, "threat": threat, "kind": r.kind, "route": r.route, "attack": r.attack, "eps": r.eps,
            "image": np.repeat(images[:n], k), "draw": np.tile(np.arange(k), n), "inside": np.repeat(r.inside, k),
            "correct": r.judged.correct.reshape(-1), "prediction": r.judged.pred.reshape(-1),
            "norm": np.repeat(r.norms, k)}))
    return pd.concat(frames, ignore_index=True)


def worst_case_run(ok: np.ndarray, eps: float) -> Run:
    """The worst case of a row as a run of its own (one draw), so that its per-image records carry it:
    the paired tests of stage ``tables`` read it."""
    zero = np.zeros(len(ok))
    return Run("worst_case", "all", "worst_case", eps, zero, np.ones(len(ok), dtype=bool),
               Judged(ok[:, None], np.full((len(ok), 1), -1)))
