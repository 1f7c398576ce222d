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
    ``norms`` in the threat's norm, which images are ``inside`` the budget (an image the run did
    not attack is outside it), their judgement, and which of its images the detector ``flagged``."""

    kind: str
    route: str
    attack: str
    eps: float
    norms: np.ndarray
    inside: np.ndarray
    judged: Judged
    flagged: np.ndarray

    @property
    def key(self) -> tuple:
        return self.kind, self.route, self.attack, self.eps

    @property
    def ok(self) -> np.ndarray:
        """Per image: robust to this run (an image outside the budget does not count against it)."""
        return self.judged.robust | ~self.inside

    @property
    def ok_per_draw(self) -> np.ndarray:
        return self.judged.correct | ~self.inside[:, None]


def concat(parts: list[Run]) -> Run:
    """One run from its parts on consecutive batches of images (the same run on each)."""
    first = parts[0]
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    return Run(first.kind, first.route, first.attack, first.eps, cat("norms"), cat("inside"),
               Judged(np.concatenate([p.judged.correct for p in parts]), np.concatenate([p.judged.pred for p in parts])),
               cat("flagged"))


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


COLUMNS = ["model", "threat", "kind", "route", "attack", "eps", "image", "draw", "inside", "correct", "prediction",
           "norm", "flagged"]


def empty_records() -> pd.DataFrame:
    """The records of no image (a shard without batches)."""
    return pd.DataFrame({c: [] for c in COLUMNS})


def records(runs: list[Run], images: np.ndarray, model: str, threat: str) -> pd.DataFrame:
    """One row per run x image x draw: the pool index of the image, whether it was in budget, whether
    the answer was correct, the prediction, the perturbation's norm and whether the detector
    flagged the image."""
    frames = []
    for r in runs:
        n, k = r.judged.correct.shape
        frames.append(pd.DataFrame({
            "model": model, "threat": threat, "kind": r.kind, "route": r.route, "attack": r.attack, "eps": r.eps,
            "image": np.repeat(images[:n], k), "draw": np.tile(np.arange(k), n), "inside": np.repeat(r.inside, k),
            "correct": r.judged.correct.reshape(-1), "prediction": r.judged.pred.reshape(-1),
            "norm": np.repeat(r.norms, k), "flagged": np.repeat(r.flagged, k)}))
    return pd.concat(frames, ignore_index=True)


def from_records(frame: pd.DataFrame) -> list[Run]:
    """The runs of one (model, threat) from its records, in their order (inverse of :func:`records`)."""
    runs = []
    for (kind, route, attack, eps), rec in frame.groupby(["kind", "route", "attack", "eps"], sort=False):
        k = int(rec["draw"].max()) + 1
        first = rec.iloc[::k]
        judged = Judged(rec["correct"].to_numpy(bool).reshape(-1, k), rec["prediction"].to_numpy().reshape(-1, k))
        runs.append(Run(kind, route, attack, float(eps), first["norm"].to_numpy(float),
                        first["inside"].to_numpy(bool), judged, first["flagged"].to_numpy(bool)))
    return runs


def worst_case_run(ok: np.ndarray, eps: float) -> Run:
    """The worst case of a row as a run of its own (one draw), so that its per-image records carry it:
    the paired tests of stage ``tables`` read it."""
    zero = np.zeros(len(ok))
    return Run("worst_case", "all", "worst_case", eps, zero, np.ones(len(ok), dtype=bool),
               Judged(ok[:, None], np.full((len(ok), 1), -1)), np.zeros(len(ok), dtype=bool))
