"""Stage ``adaptive``: attack one defence adaptively, through the defence itself.

For each model of the defence (a per-attack defence such as ``cae_aae`` in the models named by
``adaptive.train_sets``: ``mixed``, the one a user deploys without knowing the attack, and the
one of the set nearest the threat model) and each threat model of ``adaptive.threats``, on a
seeded subset of the evaluated pool outside the detection calibration split:

* transfer: the stored adversarial images (made against the bare victim) within the budget;
* every gradient route that applies (:mod:`advrecover.adaptive.routes`) x every gradient attack
  of ``adaptive.attacks``, with EOT (``adaptive.eot`` samples) when the defence is random; each
  gradient-free attack (Square) once, through the defence's real forward pass;
* judgement (:mod:`advrecover.adaptive.outcomes`): a random defence answers each image in
  ``adaptive.draws`` fresh draws and counts as robust only if every draw is right (the mean over
  draws beside it), in the same batches as it was attacked; every image is attacked;
* worst case: an image counts as robust only if it is classified correctly clean and under every
  run within the budget: transfer, every route and attack, the sanity checks' runs at eps no
  larger than the threat's, the detection-aware attack;
* detection rates over perturbed images only, and the joint success (misclassified, not flagged);
* the sanity checks of :mod:`advrecover.adaptive.checks` on the first threat model;
* the cost of the defended answer: seconds per 100 images on this machine (a timing), and the
  forward passes per image that the whole row spent.

``adaptive.per_defence`` gives one defence a budget of its own (:func:`budget`); the ``attacks``
column names each row's attacks and their steps. A defence with its own classifier (adversarial
training) is attacked through that classifier. Writes ``results/adaptive/<defence>.csv`` (one
row per model and threat, every accuracy with its exact 95% interval), the per-image records
``<defence>.images.csv.gz``, the leaderboard summary ``<defence>.json`` and the metrics JSON.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import adaptive, defences, detection, inference, scale
from ..config import entry, section
from ..adaptive import checks
from ..adaptive import outcomes as O
from ..adaptive.methods import DetectionAwarePGD, every_image
from ..adaptive.routes import Defended, routes_for
from ..data.adversarial import read_adversarial
from ..data.pools import read_pool
from ..data.tensors import to_tensor
from ..io import atomic_path, sha256_file, write_csv_gz, write_json
from ..models import victim as victims

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectionAware:
    """``adaptive.detection_aware``: PGD ``steps`` and the ``weight`` of the detection penalty."""

    steps: int
    weight: float


@dataclass(frozen=True)
class AdaptiveConfig:
    """The ``adaptive`` params: ``n`` attacked images (0: every image outside the calibration
    split), the ``train_sets`` whose models a per-attack defence is attacked in, ``batch_size``,
    ``eot`` gradient samples and ``draws`` judgement draws for random defences, ``threats`` (name ->
    norm Linf | L2 and eps), ``attacks`` (instances of :mod:`advrecover.adaptive`),
    ``detection_aware`` and ``checks``."""

    n: int
    train_sets: tuple[str, ...]
    batch_size: int
    eot: int
    draws: int
    threats: dict
    attacks: dict
    detection_aware: DetectionAware
    checks: checks.Checks


@dataclass(frozen=True)
class Data:
    """The attacked subset: clean images ``x``, ``labels``, the stored ``transfer`` images of each
    column, the clean calibration images of the detector, and the pool ``index`` of each image."""

    x: torch.Tensor
    labels: torch.Tensor
    transfer: dict
    calibration: torch.Tensor
    index: np.ndarray


def budget(section: dict, defence: str) -> dict:
    """The ``adaptive`` params for one defence: its ``per_defence`` entry's keys replace the section's
    (``checks`` key by key)."""
    override = section["per_defence"].get(defence, {})
    merged = {k: v for k, v in section.items() if k != "per_defence"}
    merged.update({k: v for k, v in override.items() if k != "checks"})
    merged["checks"] = {**section["checks"], **override.get("checks", {})}
    return merged


def subset(rows: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The first ``n`` of ``rows`` (all when ``n`` is 0) in one seeded order, sorted: the images of a
    smaller budget (``adaptive.per_defence``) are among those of a larger one."""
    if not n or n >= len(rows):
        return rows
    return np.sort(np.random.default_rng([seed, 7]).permutation(rows)[:n])


def load_data(*, pool_path, adversarial_dir, columns: list[str], victim_checksum: str, n: int,
              calibration_share: float, seed: int) -> Data:
    """The seeded subset of ``n`` images outside the calibration split (the first ``n`` of one seeded
    order, so the subsets of two budgets are nested), and their transfer images."""
    pool = read_pool(pool_path)
    if not pool.labelled:
        raise ValueError(f"{pool_path}: the evaluated pool needs labels (accuracy is measured against them)")
    calibration, rest = detection.split(len(pool.labels), calibration_share, seed)
    rest = subset(rest, n, seed)
    transfer = {}
    for column in columns:
        s = read_adversarial(Path(adversarial_dir) / f"{column}.h5", victim_checksum, pool.attrs["checksum"])
        if not np.array_equal(s.pool_index, np.arange(len(pool.labels))):
            raise ValueError(f"{adversarial_dir}/{column}.h5: does not hold the whole pool in order")
        transfer[column] = to_tensor(s.float_images[rest])
    return Data(to_tensor(pool.images[rest]), torch.from_numpy(pool.labels[rest]), transfer,
                to_tensor(pool.images[calibration]), rest)


def batched(fn, *tensors, batch_size: int) -> torch.Tensor:
    """``fn`` over aligned batches of ``tensors``, concatenated (on the CPU). Every pass over the
    attacked images uses these batches, so a defence whose answer depends on its batch (the
    reversal's contrastive repair) is judged in the batches it was attacked in."""
    n = len(tensors[0])
    if not n:
        return torch.zeros(0, dtype=torch.long)
    return torch.cat([fn(*(t[s:s + batch_size] for t in tensors)).detach().cpu() for s in range(0, n, batch_size)])


def within(x: torch.Tensor, adv: torch.Tensor, threat: dict) -> torch.Tensor:
    """Which images of ``adv`` lie in the threat model's ball around ``x`` (float tolerance 1e-6)."""
    return torch.from_numpy(O.norms(x, adv, threat["norm"]) <= threat["eps"] + 1e-6)


def draw_seed(seed: int, draw: int) -> int:
    """The torch seed of judgement draw ``draw``: fresh, not the attacks' seed."""
    return int(np.random.SeedSequence([seed, 26, draw]).generate_state(1)[0])


class Attacker:
    """Runs attacks on one defended model and judges their images through the defence's real
    forward pass; counts the defended model's forward passes (``forwards``, images)."""

    def __init__(self, victim, defence, needs: dict, data: Data, cfg: AdaptiveConfig, seed: int, device):
        self.victim, self.defence, self.needs, self.data = victim, defence, needs, data
        self.cfg, self.seed, self.device = cfg, seed, device
        self.random = bool(needs["random"])
        self.eot = cfg.eot if self.random else 1
        self.draws = cfg.draws if self.random else 1
        self.forwards = 0

    def model(self, route: str) -> Defended:
        """The defended model with the gradient of ``route``, its forward passes counted."""
        model = Defended(self.victim, self.defence, route)
        model.register_forward_hook(self._count)
        return model

    def _count(self, _module, inputs, _output) -> None:
        self.forwards += len(inputs[0])

    @cached_property
    def clean(self) -> O.Run:
        """The clean images' judgement (once per model), timed for :attr:`seconds_per_100`."""
        start = time.perf_counter()
        run = self.run("clean", "", "clean", {"norm": "Linf", "eps": 0.0}, self.data.x)
        self._seconds = 100 * (time.perf_counter() - start) / max(len(self.data.x) * self.draws, 1)
        return run

    @property
    def seconds_per_100(self) -> float:
        """Wall time of one clean draw (recovery and classification) per 100 images, this machine."""
        _ = self.clean  # the timed pass
        return self._seconds

    def judge(self, images: torch.Tensor, rows: np.ndarray | None = None) -> O.Judged:
        """The defended victim's answers on ``images`` (the attacked images of ``rows``, all when
        None) in each judgement draw."""
        answer, preds = self.model("full"), []
        labels = self.data.labels.numpy() if rows is None else self.data.labels.numpy()[rows]
        with torch.no_grad():
            for d in range(self.draws):
                torch.manual_seed(draw_seed(self.seed, d))
                preds.append(batched(lambda x: answer(x.to(self.device)).argmax(1), images,
                                     batch_size=self.cfg.batch_size))
        pred = torch.stack(preds, 1).numpy()
        return O.Judged(pred == labels[:, None], pred)

    def run(self, kind: str, route: str, attack: str, threat: dict, adv: torch.Tensor,
            only: np.ndarray | None = None) -> O.Run:
        """The judged outcome of the images ``adv``; with ``only``, of those images alone, in the
        batches they were attacked in (the others, not attacked by this run, count as outside its
        budget: prediction -1 in the records)."""
        norms, inside = O.norms(self.data.x, adv, threat["norm"]), within(self.data.x, adv, threat).numpy()
        if only is None:
            return O.Run(kind, route, attack, threat["eps"], norms, inside, self.judge(adv))
        rows = np.flatnonzero(only)
        part, n = self.judge(adv[rows], rows), len(self.data.x)
        correct, pred = np.zeros((n, self.draws), dtype=bool), np.full((n, self.draws), -1)
        correct[rows], pred[rows] = part.correct, part.pred
        return O.Run(kind, route, attack, threat["eps"], norms, inside & only, O.Judged(correct, pred))

    def attack(self, route: str, spec: dict, threat: dict, eot: int | None = None,
               only: np.ndarray | None = None) -> torch.Tensor:
        """The adversarial images of one attack instance through ``route`` (``eot`` samples per
        step: the defence's default unless given); every image attacked when the defence is random.
        ``only``: attack just these images (a boolean mask), the others stay clean."""
        atk = adaptive.build(spec, self.model(route), threat["norm"], threat["eps"], eot or self.eot)
        form = every_image(spec["method"]) if self.random else (lambda a, x, y: a(x, y))
        rows = torch.from_numpy(np.flatnonzero(only)) if only is not None else torch.arange(len(self.data.x))
        adv = self.data.x.clone()
        torch.manual_seed(self.seed)
        if len(rows):
            adv[rows] = batched(lambda x, y: form(atk, x.to(self.device), y.to(self.device)), self.data.x[rows],
                                self.data.labels[rows], batch_size=self.cfg.batch_size)
        return adv

    def gradient_norms(self, model) -> np.ndarray:
        """Per image: the norm of the input gradient of the cross-entropy through ``model``."""
        def norms(x, y):
            x = x.to(self.device).requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(model(x), y.to(self.device), reduction="sum")
            return torch.autograd.grad(loss, x)[0].flatten(1).norm(dim=1)

        torch.manual_seed(self.seed)
        return batched(norms, self.data.x, self.data.labels, batch_size=self.cfg.batch_size).double().numpy()

    def scores(self, images: torch.Tensor) -> np.ndarray:
        torch.manual_seed(self.seed)
        with torch.no_grad():
            return batched(lambda x: torch.from_numpy(detection.scores(x, self.defence.recover(x).clamp(0, 1))),
                           images.to(self.device), batch_size=self.cfg.batch_size).numpy()


def gradient_free(spec: dict) -> bool:
    """Does this attack instance search without gradients (queries the real forward pass only)?"""
    return adaptive.REGISTRY.trait(spec["method"], "gradient_free", False)


def _budget_key(spec: dict) -> tuple[str, int]:
    params = adaptive.REGISTRY.parameters(spec["method"])
    key = "n_queries" if "n_queries" in params else "steps"
    return key, spec.get(key, params.get(key))


def describe(attacks: dict) -> str:
    """The attacks of a row and their budgets, e.g. ``apgd_ce(20) square(1000q)``."""
    return " ".join(f"{name}({n}{'q' if key == 'n_queries' else ''})"
                    for name, (key, n) in ((name, _budget_key(spec)) for name, spec in attacks.items()))


def doubled(spec: dict) -> dict:
    """The attack instance with twice its steps."""
    key, n = _budget_key(spec)
    return {**spec, key: 2 * n}


def attack_runs(att: Attacker, threat: dict) -> tuple[list[O.Run], dict]:
    """Every gradient attack through every route that applies, then every gradient-free attack
    (route ``forward``) on the images all of them left robust, as AutoAttack orders Square after
    the white-box attacks: their judged runs, and their images by (route, attack)."""
    runs, images = [], {}
    routes = routes_for(att.needs["differentiable"], att.needs["surrogate"])
    ordered = sorted(att.cfg.attacks.items(), key=lambda item: gradient_free(item[1]))
    for name, spec in ordered:
        if att.eot > 1 and spec["method"] == "pgd" and threat["norm"] == "L2":
            log.info("skipping %s under L2 for a random defence (no EOT form in torchattacks)", name)
            continue
        free = gradient_free(spec)
        only = O.all_of([r for r in runs if r.kind == "attack"], att.clean) if free else None
        for route in ["forward"] if free else routes:
            adv = att.attack("full" if free else route, spec, threat, only=only)
            runs.append(att.run("gradient_free" if free else "attack", route, name, threat, adv, only))
            images[route, name] = adv
            log.info("%s %s via %s: accuracy %.3f%s", threat["norm"], name, route,
                     float((att.clean.ok & runs[-1].ok if only is None else only & runs[-1].ok).mean()),
                     " (after every gradient attack)" if free else "")
    return runs, images


def strongest(att: Attacker, runs: list[O.Run]) -> O.Run | None:
    """The single gradient attack run with the lowest accuracy (the first on ties)."""
    attacks = [r for r in runs if r.kind == "attack"]
    return min(attacks, key=lambda r: (att.clean.ok & r.ok).mean()) if attacks else None


def gradient_route(att: Attacker, runs: list[O.Run]) -> str:
    """The gradient route with the lowest accuracy: where the checks and the detection-aware PGD run."""
    routes = {}
    for r in runs:
        if r.kind == "attack":
            routes[r.route] = routes.get(r.route, att.clean.ok) & r.ok
    return min(routes, key=lambda route: routes[route].mean()) if routes else "bpda"


def score_route(needs: dict) -> str:
    """The route the detection-aware PGD differentiates the detection score through: BPDA's identity
    backward makes ``x - recover(x)`` constant, so the exact or surrogate route where one exists."""
    return "full" if needs["differentiable"] else "bpda_surrogate" if needs["surrogate"] else "bpda"


def detection_aware(att: Attacker, route: str, threat: dict, limit: float) -> tuple[O.Run, torch.Tensor]:
    """The PGD that misleads the defended victim while keeping the detection score low (EOT when random)."""
    model, scorer, cfg = att.model(route), att.model(score_route(att.needs)), att.cfg.detection_aware
    atk = DetectionAwarePGD(model, lambda x: (x - scorer.purify(x).clamp(0, 1)).flatten(1).norm(dim=1), limit,
                            threat["norm"], threat["eps"], cfg.steps, threat["eps"] / 4, cfg.weight, att.eot)
    torch.manual_seed(att.seed)
    adv = batched(lambda x, y: atk(x.to(att.device), y.to(att.device)), att.data.x, att.data.labels,
                  batch_size=att.cfg.batch_size)
    return att.run("detection_aware", route, "detection_aware_pgd", threat, adv), adv


def detection_figures(att: Attacker, runs: dict, images: dict, limit: float) -> dict:
    """Detection rates over the perturbed images in budget only, and the joint success of each
    attack: the share of clean-correct images it makes misclassified without being flagged."""
    out, clean_ok = {}, att.clean.ok
    for name, run in runs.items():
        if run is None:
            out.update({f"dr_{name}": float("nan"), f"joint_{name}": float("nan")})
            continue
        flagged = att.scores(images[name]) > limit
        perturbed = run.inside & (run.norms > 0)
        out[f"dr_{name}"] = float(flagged[perturbed].mean()) if perturbed.any() else float("nan")
        out[f"joint_{name}"] = float((~run.ok & ~flagged)[clean_ok].mean()) if clean_ok.any() else float("nan")
    return out


def transfer_detection(att: Attacker, runs: list[O.Run], limit: float) -> float:
    """Share of the perturbed transfer images in budget that the detector flags."""
    flags = [att.scores(att.data.transfer[r.attack])[r.inside & (r.norms > 0)] > limit for r in runs]
    flags = np.concatenate(flags) if flags else np.zeros(0, dtype=bool)
    return float(flags.mean()) if len(flags) else float("nan")


def check_runs(att: Attacker, route: str, threat: dict, top: O.Run | None) -> tuple[dict, dict, np.ndarray]:
    """The runs of the sanity checks through ``route``, on their own seeded subset of the attacked
    images (``adaptive.checks.n``): PGD at an unbounded budget and along the eps sweep, and the
    strongest reported attack (``top``) with doubled steps and, for a random defence, doubled EOT
    samples. Returns them by name, the figures they give (on the subset), and the subset."""
    c, n = att.cfg.checks, len(att.data.x)
    only = np.isin(np.arange(n), subset(np.arange(n), c.n, att.seed))
    pgd = {"method": "pgd", "steps": c.steps}
    big = checks.unbounded_eps(threat["norm"], tuple(att.data.x.shape[1:]))
    plan = {"unbounded": (f"pgd({c.steps})", pgd, {**threat, "eps": big}, None),
            **{f"sweep_{m:g}": (f"pgd({c.steps}) x{m:g} eps", pgd, {**threat, "eps": m * threat["eps"]}, None)
               for m in sorted(c.eps_sweep)}}
    if top is not None:
        spec = att.cfg.attacks[top.attack]
        plan["doubled_steps"] = (f"{top.attack} doubled steps", doubled(spec), threat, None)
        if att.eot > 1:
            plan["doubled_eot"] = (f"{top.attack} doubled eot", spec, threat, 2 * att.eot)
    runs = {}
    for key, (name, spec, t, eot) in plan.items():
        r = route if key in ("unbounded",) or key.startswith("sweep") else top.route
        runs[key] = att.run("check", r, name, t, att.attack(r, spec, t, eot, only=only), only)
    acc = {k: round(float((att.clean.ok & r.ok)[only].mean()), 4) for k, r in runs.items()}
    figures = {"check_n": int(only.sum()), "check_unbounded": acc["unbounded"], "check_unbounded_eps": round(big, 6),
               "check_eps_sweep": [acc[f"sweep_{m:g}"] for m in sorted(c.eps_sweep)],
               "check_eps_sweep_eps": [round(m * threat["eps"], 6) for m in sorted(c.eps_sweep)],
               "check_strongest": round(float((att.clean.ok & top.ok)[only].mean()), 4) if top else float("nan"),
               "check_doubled_steps": acc.get("doubled_steps", float("nan")),
               "check_doubled_eot": acc.get("doubled_eot", float("nan"))}
    return runs, figures, only


def gradient_check(att: Attacker, routes: list[str]) -> tuple[list[str], dict]:
    """The gradient check of every route against the bare classifier's gradient on the same images."""
    reference = att.gradient_norms(lambda x: inference.logits(att.victim, x))
    flags, zero, ratio = [], {}, {}
    for route in routes:
        norms = att.gradient_norms(att.model(route))
        zero[route] = round(float(np.mean(norms == 0)), 4)
        ratio[route] = round(float(np.median(norms) / max(np.median(reference), 1e-30)), 6)
        flags.append(checks.gradient(route, norms, reference, att.cfg.checks))
    return flags, {"check_zero_gradient": zero, "check_gradient_ratio": ratio}


def route_outcomes(att: Attacker, runs: list[O.Run]) -> dict[str, np.ndarray]:
    """Per gradient route: robust clean and to every attack through it."""
    routes = dict.fromkeys(r.route for r in runs if r.kind == "attack")
    return {route: O.all_of([r for r in runs if r.kind == "attack" and r.route == route], att.clean)
            for route in routes}


def flags_of(att: Attacker, runs: list[O.Run], transfer: np.ndarray, checked: dict, top: O.Run | None,
             only: np.ndarray | None = None) -> list[str]:
    """Every flag of a row: weak routes and a stronger gradient-free attack always; the checks'
    (``checked``, run on the images ``only``) when run."""
    c, clean_ok, routes = att.cfg.checks, att.clean.ok, route_outcomes(att, runs)
    gradient = O.all_of([r for r in runs if r.kind == "attack"], att.clean)
    flags = checks.weak_routes(routes, transfer, c)
    if any(r.kind == "gradient_free" for r in runs):
        flags.append(checks.gradient_free(O.all_of(runs, att.clean), gradient, c))
    if checked:
        sweep = [(clean_ok & checked[f"sweep_{m:g}"].ok)[only] for m in sorted(c.eps_sweep)]
        flags += [checks.unbounded((clean_ok & checked["unbounded"].ok)[only], c), checks.monotone(sweep, c)]
        for key in ("doubled_steps", "doubled_eot"):
            if key in checked:
                flags.append(checks.converged((clean_ok & top.ok)[only], (clean_ok & checked[key].ok)[only], c))
    return [f for f in flags if f]


def evaluate_threat(att: Attacker, threat_name: str, threat: dict, limit: float,
                    with_checks: bool) -> tuple[dict, list[O.Run]]:
    """One row of the adaptive table (accuracies with exact intervals, detection, flags) and its runs."""
    att.forwards, clean = 0, att.clean
    transfer = [att.run("transfer", "", column, threat, adv) for column, adv in att.data.transfer.items()
                 if within(att.data.x, adv, threat).any()]  # a column with no image in budget counts for nothing
    runs, images = attack_runs(att, threat)
    top, route = strongest(att, runs), gradient_route(att, runs)
    aware, aware_images = detection_aware(att, route, threat, limit)
    checked, figures, only = check_runs(att, route, threat, top) if with_checks else ({}, {}, None)
    gradient_flags, gradient_figures = gradient_check(att, list(route_outcomes(att, runs))) if with_checks \
        else ([], {})
    in_budget = [r for r in [*transfer, *runs, aware, *checked.values()] if r.eps <= threat["eps"] + 1e-9]
    worst, transfer_ok = O.all_of(in_budget, clean), O.all_of(transfer, clean)
    square = [r for r in runs if r.kind == "gradient_free"]
    flags = flags_of(att, runs, transfer_ok, checked, top, only) + [f for f in gradient_flags if f]
    top_images = images[top.route, top.attack] if top else None
    row = {"threat": threat_name, "norm": threat["norm"], "eps": threat["eps"], "n": len(att.data.labels),
           "draws": att.draws, "eot": att.eot, "attacks": describe(att.cfg.attacks),
           **O.figure("clean", clean.ok), "clean_mean": float(clean.judged.correct.mean()),
           **O.figure("transfer", transfer_ok),
           **{k: v for r, ok in route_outcomes(att, runs).items() for k, v in O.figure(f"route_{r}", ok).items()},
           **O.figure("gradient_free", O.all_of(runs, clean) if square else np.zeros(0, dtype=bool)),
           **O.figure("worst_case", worst), "worst_case_mean": O.mean_over_draws(in_budget, clean),
           "strongest": f"{top.attack} via {top.route}" if top else "",
           "dr_transfer": transfer_detection(att, transfer, limit),
           **detection_figures(att, {"adaptive": top, "detection_aware": aware},
                               {"adaptive": top_images, "detection_aware": aware_images}, limit),
           **O.figure("detection_aware_accuracy", clean.ok & aware.ok),
           "flags": " ".join(flags), "checked": with_checks,
           **{k: json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v
              for k, v in {**figures, **gradient_figures}.items()},
           "forwards_per_image": round(att.forwards / max(len(att.data.labels), 1), 1)}
    return row, [clean, *transfer, *runs, aware, *checked.values(), O.worst_case_run(worst, threat["eps"])]


def model_sets(spec: dict, train_sets: tuple[str, ...]) -> list[str | None]:
    """The models of a defence to attack: each of ``train_sets`` for a per-attack defence, else its one model."""
    return list(train_sets) if defences.trained_on_attack(spec) else [None]


def leaderboard(defence: str, rows: list[dict]) -> dict:
    """The RobustBench-style summary of a defence: per attacked model and threat, the fields a
    leaderboard reads (robust accuracy = the adaptive worst case; reported = the transfer figure)."""
    return {"defence": defence, "entries": [
        {"model": r["model"], "threat_model": r["norm"], "eps": r["eps"], "n": r["n"], "draws": r["draws"],
         "clean_acc": r["clean"], "robust_acc": r["worst_case"], "robust_acc_ci": [r["worst_case_lo"], r["worst_case_hi"]],
         "robust_acc_mean_over_draws": r["worst_case_mean"], "reported": r["transfer"], "attacks": r["attacks"],
         "eot": r["eot"], "forward_passes_per_image": r["forwards_per_image"],
         "flags": r["flags"].split() if r["checked"] else ["not checked"] + r["flags"].split()} for r in rows]}


def write(rows: list[dict], records: list[pd.DataFrame], defence: str, *, out_path, images_path, summary_path,
          metrics_path) -> None:
    """The stage's four outputs, each written atomically."""
    with atomic_path(out_path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.6f")
    write_csv_gz(images_path, pd.concat(records, ignore_index=True))
    write_json(summary_path, leaderboard(defence, rows))
    write_json(metrics_path, {"rows": rows})


def from_params(p: dict, args) -> dict:
    """The values of ``run`` that come from the validated params (and this job's ``args``): the
    one translation, used by the CLI and by :func:`workload`."""
    d = p["evaluate"]["detection"]
    return {"defence": args.defence,
            "spec": entry(p["evaluate"]["defences"], args.defence, "defence", "evaluate.defences"),
            "cfg": section(AdaptiveConfig, budget(p["adaptive"], args.defence)),
            "calibration_share": d["calibration_share"], "fpr": d["fpr"], "columns": p["attack"]["run"],
            "victim_cfg": section(victims.VictimConfig, p["victim"]), "seed": p["seed"]}


def run(*, defence: str, spec: dict, cfg: AdaptiveConfig, calibration_share: float, fpr: float,
        columns: list[str], pool_path: str | Path, adversarial_dir: str | Path, victim_path: str | Path,
        victim_cfg: victims.VictimConfig, models_dir: str | Path, seed: int, device, out_path: str | Path,
        images_path: str | Path, summary_path: str | Path, metrics_path: str | Path) -> list[dict]:
    """Attack every model of ``defence`` under every threat model; write its rows, records and summaries."""
    data = load_data(pool_path=pool_path, adversarial_dir=adversarial_dir, columns=columns,
                     victim_checksum=sha256_file(victim_path), n=cfg.n, calibration_share=calibration_share,
                     seed=seed)
    victim = inference.prepare(victims.load(victim_path, victim_cfg), device)
    rows, records = [], []
    for train_set in model_sets(spec, cfg.train_sets):
        model = defences.build(spec, models_dir, train_set, victim).to(device)
        classifier = defences.classifier(model, victim, device)
        att = Attacker(classifier, model, defences.adaptive_needs(spec), data, cfg, seed, device)
        limit = detection.threshold(att.scores(data.calibration), fpr)
        for i, (name, threat) in enumerate(cfg.threats.items()):
            row, runs = evaluate_threat(att, name, threat, limit, i == 0)
            rows.append({"defence": defence, "model": train_set or "",
                         "classifier": "victim" if classifier is victim else "own", **row,
                         "seconds_per_100": round(att.seconds_per_100, 3)})
            records.append(O.records(runs, data.index, train_set or "", name))
            log.info("%s [%s] %s: %s", defence, train_set, name, rows[-1])
    write(rows, records, defence, out_path=out_path, images_path=images_path, summary_path=summary_path,
          metrics_path=metrics_path)
    return rows


def _passes(spec: dict) -> int:
    return adaptive.REGISTRY.passes(spec)


def gradient_passes(cfg: AdaptiveConfig, eot: int) -> tuple[int, int, int]:
    """Per image and model: the gradients through one route's attacks (every threat); those of the
    detection-aware PGD and the sanity checks on the strongest route (an upper bound: the costliest
    attack taken as the strongest; charged to the first route); and the gradient-free queries."""
    per_route, queries = 0, 0
    for threat in cfg.threats.values():
        for spec in cfg.attacks.values():
            if gradient_free(spec):
                queries += _passes(spec)
            elif not (eot > 1 and spec["method"] == "pgd" and threat["norm"] == "L2"):
                per_route += _passes(spec) * eot
    c, costliest = cfg.checks, max((_passes(s) for s in cfg.attacks.values()), default=0)
    checks_cost = c.steps * (1 + len(c.eps_sweep)) * eot + 2 * costliest * eot * (2 if eot > 1 else 1) + 4
    return per_route, checks_cost + cfg.detection_aware.steps * eot * len(cfg.threats), queries


def workload(p: dict, job: scale.Job) -> list[scale.Load]:
    """Every route's gradients (:func:`gradient_passes`) and the defended answers, per attacked model."""
    job_cfg, size = from_params(p, job.args), p["sample"]["image_size"]
    spec, cfg = job_cfg["spec"], job_cfg["cfg"]
    n = cfg.n or round(p["sample"]["pools"][p["evaluate"]["pool"]]["n"] * (1 - p["evaluate"]["detection"]["calibration_share"]))
    victim = scale.trained_victim(p, job)
    sets = model_sets(spec, cfg.train_sets)
    defence = defences.build(spec, job.path(job.args.models), sets[0], victim)
    classifier, needs = defences.classifier(defence, victim), defences.adaptive_needs(spec)
    per_route, strongest, queries = gradient_passes(cfg, cfg.eot if needs["random"] else 1)
    routes = routes_for(needs["differentiable"], needs["surrogate"])
    images, shape = n * len(sets), (3, size, size)
    loads = [scale.Load(f"route {r}", Defended(classifier, defence, r), (defence, classifier), "grad", cfg.batch_size,
                        images * (per_route + (strongest if i == 0 else 0)), shape) for i, r in enumerate(routes)]
    judged = len(p["attack"]["run"]) + len(routes) * len(cfg.attacks) + len(cfg.checks.eps_sweep) + 4
    answers = (1 + len(cfg.threats) * judged) * (cfg.draws if needs["random"] else 1) + queries
    return loads + [scale.Load("defended answers", Defended(classifier, defence, routes[0]), (defence, classifier),
                               "forward", cfg.batch_size, images * answers, shape)]
