"""Stage ``adaptive``: attack one defence adaptively, through the defence itself.

For each model of the defence (a per-attack defence such as ``cae_aae`` in the models named by
``adaptive.train_sets``: ``mixed``, the one a user deploys without knowing the attack, and the
one of the set nearest the threat model) and each threat model of ``adaptive.threats``, on a
seeded subset of the evaluated pool outside the detection calibration split:

* transfer: the stored adversarial images (made against the bare victim) within the budget;
* every gradient route that applies (:mod:`advrecover.adaptive.routes`) x every attack of
  ``adaptive.attacks``, with EOT (``adaptive.eot`` samples) when the defence is random;
* worst case: an image counts as robust only if it is classified correctly clean, under every
  transfer image in budget and under every route and attack;
* the detection rate of the transfer images, of the strongest adaptive attack's images, and of a
  PGD that also keeps the detection score under the threshold (``adaptive.detection_aware``);
* the sanity checks of :mod:`advrecover.adaptive.checks` on the first threat model;
* the cost of the defended answer: seconds per 100 images on this machine (a timing: it differs
  from run to run), since a test-time optimisation multiplies the inference cost.

``adaptive.per_defence`` gives one defence a budget of its own (:func:`budget`): where every
attack step runs a whole repair (the reversal), the quick profile attacks fewer images with
fewer steps rather than leaving the defence out.

A defence with its own classifier (adversarial training) is attacked through that classifier.
Writes ``results/adaptive/<defence>.csv`` (one row per model and threat) and its metrics JSON.
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
from .. import params as params_mod
from ..adaptive import checks
from ..adaptive.methods import DetectionAwarePGD
from ..adaptive.routes import Defended, routes_for
from ..data.adversarial import read_adversarial
from ..data.pools import read_pool
from ..data.tensors import to_tensor
from ..io import atomic_path, sha256_file, write_json
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
    ``eot`` gradient samples for random defences, ``threats`` (name -> norm Linf | L2 and eps),
    ``attacks`` (instances of :mod:`advrecover.adaptive`), ``detection_aware`` and ``checks``."""

    n: int
    train_sets: tuple[str, ...]
    batch_size: int
    eot: int
    threats: dict
    attacks: dict
    detection_aware: DetectionAware
    checks: checks.Checks


@dataclass(frozen=True)
class Data:
    """The attacked subset: clean images ``x``, ``labels``, the stored ``transfer`` images of each
    column, and the clean calibration images of the detector."""

    x: torch.Tensor
    labels: torch.Tensor
    transfer: dict
    calibration: torch.Tensor


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
                to_tensor(pool.images[calibration]))


def batched(fn, *tensors, batch_size: int) -> torch.Tensor:
    """``fn`` over aligned batches of ``tensors``, concatenated (on the CPU)."""
    n = len(tensors[0])
    return torch.cat([fn(*(t[s:s + batch_size] for t in tensors)).detach().cpu() for s in range(0, n, batch_size)])


def within(x: torch.Tensor, adv: torch.Tensor, threat: dict) -> torch.Tensor:
    """Which images of ``adv`` lie in the threat model's ball around ``x`` (float tolerance 1e-6)."""
    delta = (adv - x).flatten(1)
    size = delta.abs().amax(1) if threat["norm"] == "Linf" else delta.norm(dim=1)
    return size <= threat["eps"] + 1e-6


class Attacker:
    """Runs attacks on one defended model and answers through the defence's real forward pass."""

    def __init__(self, victim, defence, needs: dict, data: Data, cfg: AdaptiveConfig, seed: int, device):
        self.victim, self.defence, self.needs, self.data = victim, defence, needs, data
        self.cfg, self.seed, self.device = cfg, seed, device
        self.answer = Defended(victim, defence, "full")
        self.eot = cfg.eot if needs["random"] else 1

    @cached_property
    def _clean(self) -> tuple[torch.Tensor, float]:
        start = time.perf_counter()
        ok = self.correct(self.data.x)
        return ok, 100 * (time.perf_counter() - start) / max(len(self.data.x), 1)

    @property
    def clean_ok(self) -> torch.Tensor:
        """Per image: is the clean image classified correctly through the defence (once per model)."""
        return self._clean[0]

    @property
    def seconds_per_100(self) -> float:
        """Wall time of that clean pass (recovery and classification) per 100 images, this machine."""
        return self._clean[1]

    def correct(self, images: torch.Tensor) -> torch.Tensor:
        """Per image: does the defended victim classify ``images`` correctly (seeded for random defences)?"""
        torch.manual_seed(self.seed)
        with torch.no_grad():
            pred = batched(lambda x: self.answer(x.to(self.device)).argmax(1), images,
                           batch_size=self.cfg.batch_size)
        return pred == self.data.labels

    def attack(self, route: str, spec: dict, threat: dict, eot: int | None = None) -> torch.Tensor:
        """The adversarial images of one attack instance through ``route`` (``eot`` samples per
        step: the defence's default unless given)."""
        model = Defended(self.victim, self.defence, route)
        atk = adaptive.build(spec, model, threat["norm"], threat["eps"], eot or self.eot)
        torch.manual_seed(self.seed)
        return batched(lambda x, y: atk(x.to(self.device), y.to(self.device)), self.data.x, self.data.labels,
                       batch_size=self.cfg.batch_size)

    def zero_gradient_share(self, route: str) -> float:
        """Share of images whose input gradient of the cross-entropy through ``route`` is exactly zero."""
        model = Defended(self.victim, self.defence, route)

        def norms(x, y):
            x = x.to(self.device).requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(model(x), y.to(self.device), reduction="sum")
            return torch.autograd.grad(loss, x)[0].flatten(1).norm(dim=1)

        torch.manual_seed(self.seed)
        return float((batched(norms, self.data.x, self.data.labels, batch_size=self.cfg.batch_size) == 0)
                     .float().mean())

    def scores(self, images: torch.Tensor) -> np.ndarray:
        torch.manual_seed(self.seed)
        with torch.no_grad():
            return batched(lambda x: torch.from_numpy(detection.scores(x, self.defence.recover(x).clamp(0, 1))),
                           images.to(self.device), batch_size=self.cfg.batch_size).numpy()


def transfer_figures(att: Attacker, clean_ok: torch.Tensor, threat: dict, limit: float) -> tuple[torch.Tensor, float]:
    """Per-image robustness to every stored transfer image in budget, and their detection rate."""
    ok, flagged = clean_ok.clone(), []
    for column, adv in att.data.transfer.items():
        inside = within(att.data.x, adv, threat)
        if inside.any():
            ok &= att.correct(adv) | ~inside
            flagged.append(att.scores(adv[inside]))
    return ok, detection.rate(np.concatenate(flagged) if flagged else np.zeros(0), limit)


def route_figures(att: Attacker, clean_ok: torch.Tensor, threat: dict) -> tuple[dict, dict]:
    """Per route: per-image robustness to every attack; and the images of the single strongest attack."""
    robust, strongest, best = {}, {}, None
    for route in routes_for(att.needs["differentiable"], att.needs["surrogate"]):
        robust[route] = clean_ok.clone()
        for name, spec in att.cfg.attacks.items():
            if att.eot > 1 and spec["method"] == "pgd" and threat["norm"] == "L2":
                log.info("skipping %s under L2 for a random defence (no EOT form in torchattacks)", name)
                continue
            adv = att.attack(route, spec, threat)
            ok = clean_ok & att.correct(adv)
            robust[route] &= ok
            log.info("%s %s via %s: accuracy %.3f", threat["norm"], name, route, float(ok.float().mean()))
            if best is None or ok.float().mean() < best:
                best, strongest = float(ok.float().mean()), {"route": route, "attack": name, "images": adv}
    return robust, strongest


def detection_aware(att: Attacker, route: str, threat: dict, limit: float) -> tuple[float, float]:
    """Accuracy and detection rate under the PGD that also keeps the detection score low."""
    model = Defended(att.victim, att.defence, route)
    cfg = att.cfg.detection_aware
    atk = DetectionAwarePGD(model, lambda x: (x - model.purify(x).clamp(0, 1)).flatten(1).norm(dim=1), limit,
                            threat["norm"], threat["eps"], cfg.steps, threat["eps"] / 4, cfg.weight)
    torch.manual_seed(att.seed)
    adv = batched(lambda x, y: atk(x.to(att.device), y.to(att.device)), att.data.x, att.data.labels,
                  batch_size=att.cfg.batch_size)
    return float(att.correct(adv).float().mean()), detection.rate(att.scores(adv), limit)


def check_flags(att: Attacker, route: str, threat: dict, robust: dict, transfer: float) -> tuple[list[str], dict]:
    """Every sanity check of :mod:`advrecover.adaptive.checks` on the strongest route: the flags
    raised, and the figures they were decided on (recorded next to them)."""
    c, clean_ok, done = att.cfg.checks, att.clean_ok, {}

    def pgd_accuracy(eps: float, steps: int, eot: int | None = None) -> float:
        if (eps, steps, eot) not in done:  # the sweep's eps x 1 is also the steps check's run (same seed)
            adv = att.attack(route, {"method": "pgd", "steps": steps}, {**threat, "eps": eps}, eot)
            done[eps, steps, eot] = round(float((clean_ok & att.correct(adv)).float().mean()), 4)
        return done[eps, steps, eot]

    figures = {"check_unbounded": pgd_accuracy(c.unbounded_eps, c.steps),
               "check_eps_sweep": [pgd_accuracy(m * threat["eps"], c.steps) for m in sorted(c.eps_sweep)],
               "check_eps_sweep_eps": [round(m * threat["eps"], 6) for m in sorted(c.eps_sweep)],
               "check_steps": pgd_accuracy(threat["eps"], c.steps),
               "check_doubled_steps": pgd_accuracy(threat["eps"], 2 * c.steps),
               "check_zero_gradient": {r: round(att.zero_gradient_share(r), 4) for r in robust}}
    flags = [checks.unbounded(figures["check_unbounded"], c), checks.monotone(figures["check_eps_sweep"], c),
             checks.converged(figures["check_steps"], figures["check_doubled_steps"], c)]
    if att.eot > 1:  # a random defence: doubling the EOT samples must not change much either
        figures["check_doubled_eot"] = pgd_accuracy(threat["eps"], c.steps, 2 * att.eot)
        flags.append(checks.converged(figures["check_steps"], figures["check_doubled_eot"], c))
    flags += checks.weak_routes({r: float(ok.float().mean()) for r, ok in robust.items()}, transfer, c)
    flags += [checks.gradient(r, share) for r, share in figures["check_zero_gradient"].items()]
    return [f for f in flags if f], figures


def evaluate_threat(att: Attacker, threat_name: str, threat: dict, limit: float, with_checks: bool) -> dict:
    """One row of the adaptive table: accuracies, detection rates and flags under one threat model."""
    clean_ok = att.clean_ok
    transfer_ok, dr_transfer = transfer_figures(att, clean_ok, threat, limit)
    robust, strongest = route_figures(att, clean_ok, threat)
    worst = transfer_ok.clone()
    for ok in robust.values():
        worst &= ok
    strongest_route = strongest.get("route", "bpda")
    dr_acc, dr_rate = detection_aware(att, strongest_route, threat, limit)
    flags, figures = check_flags(att, strongest_route, threat, robust, float(transfer_ok.float().mean())) \
        if with_checks else ([], {})
    return {"threat": threat_name, "norm": threat["norm"], "eps": threat["eps"], "n": len(att.data.labels),
            "eot": att.eot, "clean": float(clean_ok.float().mean()), "transfer": float(transfer_ok.float().mean()),
            **{f"route_{r}": float(ok.float().mean()) for r, ok in robust.items()},
            "worst_case": float(worst.float().mean()), "strongest": f"{strongest.get('attack')} via {strongest_route}",
            "dr_transfer": dr_transfer, "dr_adaptive": detection.rate(att.scores(strongest["images"]), limit)
            if strongest else float("nan"), "detection_aware_accuracy": dr_acc, "detection_aware_dr": dr_rate,
            "flags": " ".join(flags) if with_checks else "not checked",
            **{k: json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v for k, v in figures.items()}}


def model_sets(spec: dict, train_sets: tuple[str, ...]) -> list[str | None]:
    """The models of a defence to attack: each of ``train_sets`` for a per-attack defence, else its one model."""
    return list(train_sets) if defences.trained_on_attack(spec) else [None]


def run(*, defence: str, spec: dict, cfg: AdaptiveConfig, calibration_share: float, fpr: float,
        columns: list[str], pool_path: str | Path, adversarial_dir: str | Path, victim_path: str | Path,
        victim_cfg: victims.VictimConfig, models_dir: str | Path, seed: int, device, out_path: str | Path,
        metrics_path: str | Path) -> list[dict]:
    """Attack every model of ``defence`` under every threat model; write its rows and metrics."""
    defences.check({defence: spec})
    adaptive.check(cfg.attacks)
    data = load_data(pool_path=pool_path, adversarial_dir=adversarial_dir, columns=columns,
                     victim_checksum=sha256_file(victim_path), n=cfg.n, calibration_share=calibration_share,
                     seed=seed)
    victim = inference.prepare(victims.load(victim_path, victim_cfg), device)
    rows = []
    for train_set in model_sets(spec, cfg.train_sets):
        model = defences.build(spec, models_dir, train_set, victim).to(device)
        classifier = victim if model.classifier is None else inference.prepare(model.classifier, device)
        att = Attacker(classifier, model, defences.adaptive_needs(spec), data, cfg, seed, device)
        limit = detection.threshold(att.scores(data.calibration), fpr)
        for i, (name, threat) in enumerate(cfg.threats.items()):
            row = {"defence": defence, "model": train_set or "", "classifier": "victim" if classifier is victim else "own",
                   **evaluate_threat(att, name, threat, limit, i == 0),
                   "seconds_per_100": round(att.seconds_per_100, 3)}
            log.info("%s [%s] %s: %s", defence, train_set, name, row)
            rows.append(row)
    frame = pd.DataFrame(rows)
    with atomic_path(out_path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6f")
    write_json(metrics_path, {"rows": rows})
    return rows



def gradient_passes(cfg: AdaptiveConfig, eot: int) -> tuple[int, int]:
    """Per image and model, the gradients through one route's attacks (every threat) and those of the
    detection-aware PGD and the sanity checks, which run on the strongest route (charged to the first)."""
    per_route = 0
    for threat in cfg.threats.values():
        for spec in cfg.attacks.values():
            if not (eot > 1 and spec["method"] == "pgd" and threat["norm"] == "L2"):
                per_route += adaptive.REGISTRY.trait(spec["method"], "passes")(
                    **{k: v for k, v in spec.items() if k != "method"}) * eot
    c = cfg.checks
    runs = {("unbounded", c.steps), (1.0, c.steps), (1.0, 2 * c.steps), *((m, c.steps) for m in c.eps_sweep)}
    checks_cost = sum(steps for _, steps in runs) * eot + (c.steps * 2 * eot if eot > 1 else 0)
    return per_route, checks_cost + cfg.detection_aware.steps * len(cfg.threats)


def workload(p: dict, job: scale.Job) -> list[scale.Load]:
    """Every route's gradients (:func:`gradient_passes`) and the defended answers, per attacked model."""
    spec, size = p["evaluate"]["defences"][job.args.defence], p["sample"]["image_size"]
    cfg = params_mod.section(AdaptiveConfig, budget(p["adaptive"], job.args.defence))
    n = cfg.n or round(p["sample"]["pools"][p["evaluate"]["pool"]]["n"] * (1 - p["evaluate"]["detection"]["calibration_share"]))
    victim = scale.trained_victim(p, job)
    sets = model_sets(spec, cfg.train_sets)
    defence = defences.build(spec, job.path(job.args.models), sets[0], victim)
    classifier, needs = defences.classifier(defence, victim), defences.adaptive_needs(spec)
    per_route, strongest = gradient_passes(cfg, cfg.eot if needs["random"] else 1)
    routes = routes_for(needs["differentiable"], needs["surrogate"])
    images, shape = n * len(sets), (3, size, size)
    loads = [scale.Load(f"route {r}", Defended(classifier, defence, r), (defence, classifier), "grad", cfg.batch_size,
                        images * (per_route + (strongest if i == 0 else 0)), shape) for i, r in enumerate(routes)]
    answers = 1 + len(cfg.threats) * (len(p["attack"]["run"]) + len(routes) * len(cfg.attacks) + 2)
    return loads + [scale.Load("defended answers", Defended(classifier, defence, routes[0]), (defence, classifier),
                               "forward", cfg.batch_size, images * answers, shape)]
