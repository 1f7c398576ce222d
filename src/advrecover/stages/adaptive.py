"""Stage ``adaptive``: one shard of the adaptive evaluation of one defence, through the defence itself.

The attacked subset (``adaptive.n`` seeded images of the evaluated pool outside the detection
calibration split) is cut into batches of ``adaptive.batch_size``; shard k of K takes the k-th
contiguous run of batches (as stage ``attack`` does). Every run on a batch is one *unit*, seeded by
the batch's global index, so a unit's outcome does not depend on the sharding and a killed job
resumes from its finished units (:mod:`advrecover.adaptive.units`). For each model of the defence
(``adaptive.train_sets`` for a per-attack defence) and each threat model, on each batch:

* clean and transfer (the stored adversarial images, made against the bare victim): judged only,
  the transfer images only where they lie in the threat model's ball (no figure counts the others);
* each gradient route that applies (:mod:`advrecover.adaptive.routes`): the gradient attacks of
  ``adaptive.attacks`` in order, EOT (``adaptive.eot`` samples) for a random defence; with
  ``adaptive.cascade`` each attack runs only on the images every earlier attack of the route left
  robust (an image broken once stays broken: the route's figure is exact), else on every image
  robust clean;
* each gradient-free attack (Square), through the real forward pass, on the images that every
  gradient attack of every route left robust (AutoAttack's order);
* the detection-aware PGD through the defence's declared route, on the images robust clean;
* on the first threat model and the images of the checks' own subset (``adaptive.checks.n``,
  independent of ``n``): through every route, PGD at an unbounded budget and along the eps sweep,
  the route's attacks again with doubled steps (and doubled EOT for a random defence), and the
  input-gradient norms beside the bare classifier's.

A random defence answers each image in ``adaptive.draws`` fresh draws (robust only if every draw is
right), in the batch it was attacked in. Each run's images are scored by the detector. Writes the
shard's per-image records and its per-row totals (forward passes, clean timing, gradient norms);
stage ``adaptive_merge`` computes the rows from them.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import adaptive, defences, detection, inference, scale
from ..adaptive import checks
from ..adaptive import outcomes as O
from ..adaptive.methods import DetectionAwarePGD, every_image
from ..adaptive.routes import Defended, routes_for
from ..adaptive.units import Units
from ..config import entry, section
from ..data.adversarial import read_adversarial
from ..data.pools import read_pool
from ..data.tensors import to_tensor
from ..io import config_digest, sha256_file, write_csv_gz, write_json
from ..models import victim as victims
from ..shards import shard_batches


log = logging.getLogger(__name__)
CLEAN = {"norm": "Linf", "eps": 0.0}


@dataclass(frozen=True)
class DetectionAware:
    """``adaptive.detection_aware``: PGD ``steps`` and the ``weight`` of the detection penalty."""

    steps: int
    weight: float


@dataclass(frozen=True)
class AdaptiveConfig:
    """The ``adaptive`` params: ``n`` attacked images (0: every image outside the calibration
    split), the ``train_sets`` whose models a per-attack defence is attacked in, ``batch_size``,
    ``shards`` (ids 0..K-1), ``cascade``, ``eot`` gradient samples and ``draws`` judgement draws for
    random defences, ``threats`` (name -> norm Linf | L2 and eps), ``attacks`` (instances of
    :mod:`advrecover.adaptive`), ``detection_aware`` and ``checks``."""

    n: int
    train_sets: tuple[str, ...]
    batch_size: int
    shards: tuple[int, ...]
    cascade: bool
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


@dataclass(frozen=True)
class Batch:
    """One batch of the attacked subset: its global index ``b`` (the seed of every unit on it), the
    pool ``index``, images ``x`` and ``labels`` of its images, their ``transfer`` images, and which
    of them the checks use."""

    b: int
    index: np.ndarray
    x: torch.Tensor
    labels: torch.Tensor
    transfer: dict
    checked: np.ndarray


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


def batches(data: Data, cfg: AdaptiveConfig, shard: int, seed: int) -> list[Batch]:
    """The batches of shard ``shard`` of ``len(cfg.shards)``; the checks' subset is drawn over the
    whole attacked subset, so it does not depend on the sharding."""
    n = len(data.x)
    checked = np.isin(np.arange(n), subset(np.arange(n), cfg.checks.n, seed))
    return [Batch(b, data.index[s:e], data.x[s:e], data.labels[s:e], {c: t[s:e] for c, t in data.transfer.items()},
                  checked[s:e]) for b, s, e in shard_batches(n, cfg.batch_size, shard, len(cfg.shards))]


def within(x: torch.Tensor, adv: torch.Tensor, threat: dict) -> np.ndarray:
    """Which images of ``adv`` lie in the threat model's ball around ``x`` (float tolerance 1e-6)."""
    return O.norms(x, adv, threat["norm"]) <= threat["eps"] + 1e-6


def unit_seed(seed: int, b: int, *salt: int) -> int:
    """The torch seed of one unit on batch ``b`` (``salt``: e.g. the judgement draw)."""
    return int(np.random.SeedSequence([seed, 29, b, *salt]).generate_state(1)[0])


class Attacker:
    """Runs attacks on one defended model, one batch at a time, and judges their images through the
    defence's real forward pass; counts the defended model's forward passes (``forwards``)."""

    def __init__(self, victim, defence, needs: dict, cfg: AdaptiveConfig, seed: int, device, limit: float = np.inf):
        self.victim, self.defence, self.needs, self.cfg = victim, defence, needs, cfg
        self.seed, self.device, self.limit = seed, device, limit
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

    def judge(self, images: torch.Tensor, labels: torch.Tensor, b: int) -> O.Judged:
        """The defended victim's answers on one batch of ``images`` in each judgement draw."""
        answer, preds = self.model("full"), []
        with torch.no_grad():
            for d in range(self.draws):
                torch.manual_seed(unit_seed(self.seed, b, 1, d))
                preds.append(answer(images.to(self.device)).argmax(1).cpu() if len(images)
                             else torch.zeros(0, dtype=torch.long))
        pred = torch.stack(preds, 1).numpy()
        return O.Judged(pred == labels.numpy()[:, None], pred)

    def flagged(self, images: torch.Tensor, b: int) -> np.ndarray:
        """Which of ``images`` the detector flags (score above the calibrated limit)."""
        if not len(images):
            return np.zeros(0, dtype=bool)
        torch.manual_seed(unit_seed(self.seed, b, 2))
        with torch.no_grad():
            x = images.to(self.device)
            return detection.scores(x, self.defence.recover(x).clamp(0, 1)) > self.limit

    def attack(self, route: str, spec: dict, threat: dict, batch: Batch, only: np.ndarray, eot: int | None = None):
        """The images of one attack instance through ``route`` on the images ``only`` of ``batch``
        (the others stay clean), ``eot`` samples per step (the defence's default unless given)."""
        adv, rows = batch.x.clone(), torch.from_numpy(np.flatnonzero(only))
        if len(rows):
            atk = adaptive.build(spec, self.model(route), threat["norm"], threat["eps"], eot or self.eot)
            form = every_image(spec["method"]) if self.random else (lambda a, x, y: a(x, y))
            torch.manual_seed(unit_seed(self.seed, batch.b, 0))
            adv[rows] = form(atk, batch.x[rows].to(self.device), batch.labels[rows].to(self.device)).detach().cpu()
        return adv

    def outcome(self, kind: str, route: str, name: str, eps: float, threat: dict, batch: Batch, adv: torch.Tensor,
                only: np.ndarray | None = None) -> O.Run:
        """The judged run of ``adv`` on ``batch``; with ``only``, of those images alone (the others
        count as outside its budget: prediction -1 in the records)."""
        norms, inside = O.norms(batch.x, adv, threat["norm"]), within(batch.x, adv, threat)
        rows = np.arange(len(adv)) if only is None else np.flatnonzero(only)
        part = self.judge(adv[rows], batch.labels[rows], batch.b)
        correct, pred = np.zeros((len(adv), self.draws), dtype=bool), np.full((len(adv), self.draws), -1)
        correct[rows], pred[rows] = part.correct, part.pred
        flagged = np.zeros(len(adv), dtype=bool)
        if kind != "clean":
            flagged[rows] = self.flagged(adv[rows], batch.b)
        keep = np.zeros(len(adv), dtype=bool)
        keep[rows] = True
        return O.Run(kind, route, name, eps, norms, inside & keep, O.Judged(correct, pred), flagged)

    def gradient_norms(self, model, batch: Batch, only: np.ndarray) -> np.ndarray:
        """Per image of ``only``: the norm of the input gradient of the cross-entropy through ``model``."""
        rows = np.flatnonzero(only)
        if not len(rows):
            return np.zeros(0)
        x = batch.x[rows].to(self.device).requires_grad_(True)
        torch.manual_seed(unit_seed(self.seed, batch.b, 3))
        loss = torch.nn.functional.cross_entropy(model(x), batch.labels[rows].to(self.device), reduction="sum")
        return torch.autograd.grad(loss, x)[0].flatten(1).norm(dim=1).detach().cpu().double().numpy()


def run_arrays(run: O.Run) -> dict:
    """A run as the arrays of its unit file."""
    return {"norms": run.norms, "inside": run.inside, "correct": run.judged.correct, "pred": run.judged.pred,
            "flagged": run.flagged, "kind": np.array(run.kind), "route": np.array(run.route),
            "attack": np.array(run.attack), "eps": np.array(run.eps)}


def run_from(a: dict) -> O.Run:
    """The run of a unit file's arrays."""
    return O.Run(str(a["kind"]), str(a["route"]), str(a["attack"]), float(a["eps"]), a["norms"], a["inside"],
                 O.Judged(a["correct"], a["pred"]), a["flagged"])


class Progress:
    """The units of one (model, threat model, batch), numbered in the order the job makes them: each
    computed once (its forward passes and seconds kept with it) or loaded from
    :class:`~advrecover.adaptive.units.Units` after a kill (``units`` None: kept nowhere)."""

    def __init__(self, units: Units | None, att: Attacker, prefix: str):
        self.units, self.att, self.prefix, self.index = units, att, prefix, 0

    def run(self, batch: Batch, compute) -> tuple[O.Run, int, float]:
        """The run ``compute()`` makes on ``batch``, its forward passes and its seconds."""
        return self._unit(batch, compute, run_arrays, run_from)

    def norms(self, batch: Batch, compute) -> tuple[np.ndarray, int, float]:
        """The gradient norms ``compute()`` returns on ``batch``, its forward passes and seconds."""
        return self._unit(batch, compute, lambda v: {"values": v}, lambda a: a["values"])

    def _unit(self, batch: Batch, compute, store, load):
        self.index += 1
        name = f"{self.prefix} unit {self.index} batch {batch.b}"
        saved = self.units.get(name) if self.units else None
        if saved is not None:
            return load(saved), int(saved["forwards"]), float(saved["seconds"])
        before, start = self.att.forwards, time.perf_counter()
        value = compute()
        forwards, seconds = self.att.forwards - before, time.perf_counter() - start
        if self.units:
            self.units.put(name, {**store(value), "forwards": np.array(forwards), "seconds": np.array(seconds)})
        return value, forwards, seconds


def gradient_free(spec: dict) -> bool:
    """Does this attack instance search without gradients (queries the real forward pass only)?"""
    return adaptive.REGISTRY.trait(spec["method"], "gradient_free", False)


def applies(att: Attacker, spec: dict, threat: dict) -> bool:
    """torchattacks has no EOT form of L2 PGD: a random defence skips it."""
    return not (att.eot > 1 and spec["method"] == "pgd" and threat["norm"] == "L2")


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


def score_route(needs: dict) -> str:
    """The declared route of the detection-aware PGD (fixed before any attack, so that every shard
    uses the same): BPDA's identity backward makes ``x - recover(x)`` constant, so the exact or
    surrogate route where one exists."""
    return "full" if needs["differentiable"] else "bpda_surrogate" if needs["surrogate"] else "bpda"


class Threat:
    """The units of one (model, threat model) on one batch, in their fixed order."""

    def __init__(self, att: Attacker, units: Progress, threat: dict, batch: Batch):
        self.att, self.units, self.threat, self.batch = att, units, threat, batch
        self.runs: list[O.Run] = []
        self.forwards = 0

    def add(self, compute) -> O.Run:
        run, forwards, _ = self.units.run(self.batch, compute)
        self.runs.append(run)
        self.forwards += forwards
        return run

    def attack(self, kind: str, route: str, name: str, spec: dict, threat: dict, only, eot=None) -> O.Run:
        """One attack's run on the images ``only`` (its eps: the threat's unless ``threat`` differs);
        route ``forward``: a gradient-free attack, querying the real forward pass."""
        model = "full" if route == "forward" else route
        return self.add(lambda: self.att.outcome(kind, route, name, threat["eps"], threat, self.batch,
                                                 self.att.attack(model, spec, threat, self.batch, only, eot), only))

    def cascade(self, kind: str, route: str, attacks: list, alive: np.ndarray, suffix: str = "", eot=None):
        """``attacks`` (name, spec) through ``route`` in order, each on the images still ``alive``
        (every image of ``alive`` when ``adaptive.cascade`` is off); returns those left robust."""
        start = alive.copy()
        for name, spec in attacks:
            run = self.attack(kind, route, name + suffix, spec, self.threat,
                              alive if self.att.cfg.cascade else start, eot)
            alive = alive & run.ok
        return alive


def gradient_attacks(att: Attacker, threat: dict, attacks: dict) -> list[tuple[str, dict]]:
    return [(n, s) for n, s in attacks.items() if not gradient_free(s) and applies(att, s, threat)]


def main_units(t: Threat, clean: O.Run, routes: list[str]) -> dict[str, np.ndarray]:
    """Transfer, every route's gradient attacks, the gradient-free attacks on what they left, and the
    detection-aware PGD, on one batch; returns, per route, the images its attacks left robust."""
    att, batch, threat = t.att, t.batch, t.threat
    for column, adv in batch.transfer.items():  # judged in budget only: an image outside counts as robust
        t.add(lambda adv=adv, column=column: att.outcome("transfer", "", column, threat["eps"], threat, batch, adv,
                                                         within(batch.x, adv, threat)))
    survivors = {route: t.cascade("attack", route, gradient_attacks(att, threat, att.cfg.attacks), clean.ok.copy())
                 for route in routes}
    left = np.logical_and.reduce([clean.ok, *survivors.values()])
    for name, spec in att.cfg.attacks.items():
        if gradient_free(spec):
            t.attack("gradient_free", "forward", name, spec, threat, left.copy())
    route = score_route(att.needs)
    t.add(lambda: att.outcome("detection_aware", route, "detection_aware_pgd", threat["eps"], threat, batch,
                              detection_aware(att, route, threat, batch, clean.ok), clean.ok))
    return survivors


def detection_aware(att: Attacker, route: str, threat: dict, batch: Batch, only: np.ndarray) -> torch.Tensor:
    """The PGD that misleads the defended victim while keeping the detection score low (EOT when random)."""
    model, scorer, cfg = att.model(route), att.model(score_route(att.needs)), att.cfg.detection_aware
    atk = DetectionAwarePGD(model, lambda x: (x - scorer.purify(x).clamp(0, 1)).flatten(1).norm(dim=1), att.limit,
                            threat["norm"], threat["eps"], cfg.steps, threat["eps"] / 4, cfg.weight, att.eot)
    adv, rows = batch.x.clone(), torch.from_numpy(np.flatnonzero(only))
    if len(rows):
        torch.manual_seed(unit_seed(att.seed, batch.b, 4))
        adv[rows] = atk(batch.x[rows].to(att.device), batch.labels[rows].to(att.device)).detach().cpu()
    return adv


def check_units(t: Threat, clean: O.Run, survivors: dict[str, np.ndarray]) -> dict:
    """The sanity checks through every route on the checks' images of one batch (which route is the
    strongest is known only once every shard has run): PGD unbounded and along the eps sweep, the
    route's attacks with doubled steps and, for a random defence, doubled EOT, on the images the
    route's attacks left robust (``survivors``: an image they broke is broken either way); and the
    gradient norms per route beside the bare classifier's. Returns the gradient norms by route."""
    att, batch, threat, c = t.att, t.batch, t.threat, t.att.cfg.checks
    only = batch.checked & clean.ok
    pgd, big = {"method": "pgd", "steps": c.steps}, checks.unbounded_eps(threat["norm"], tuple(batch.x.shape[1:]))
    attacks, routes = gradient_attacks(att, threat, att.cfg.attacks), list(survivors)
    for route in routes:
        t.attack("check", route, "unbounded", pgd, {**threat, "eps": big}, only.copy())
        for m in sorted(c.eps_sweep):
            t.attack("check", route, f"sweep_{m:g}", pgd, {**threat, "eps": m * threat["eps"]}, only.copy())
        left = only & survivors[route]
        t.cascade("check", route, [(n, doubled(s)) for n, s in attacks], left.copy(), " doubled_steps")
        if att.eot > 1:
            t.cascade("check", route, attacks, left.copy(), " doubled_eot", 2 * att.eot)
    norms = {}
    for route, model in [("reference", lambda x: inference.logits(att.victim, x)),
                         *[(r, att.model(r)) for r in routes]]:
        norms[route], forwards, _ = t.units.norms(batch, lambda model=model: att.gradient_norms(model, batch,
                                                                                                batch.checked))
        t.forwards += forwards
    return norms


def model_sets(spec: dict, train_sets: tuple[str, ...]) -> list[str | None]:
    """The models of a defence to attack: each of ``train_sets`` for a per-attack defence, else its one model."""
    return list(train_sets) if defences.trained_on_attack(spec) else [None]


def attack_model(att: Attacker, units: Units, model: str, parts: list[Batch]) -> tuple[list[pd.DataFrame], dict]:
    """Every unit of one attacked model on the shard's batches: the records of each threat model,
    and its totals (forward passes, clean seconds, the checks' gradient norms)."""
    routes = routes_for(att.needs["differentiable"], att.needs["surrogate"])
    cleans, clean_forwards, clean_seconds = {}, 0, 0.0
    for batch in parts:  # once per model, charged to its first threat model's row
        cleans[batch.b], forwards, seconds = Progress(units, att, f"{model}/clean").run(
            batch, lambda batch=batch: att.outcome("clean", "", "clean", 0.0, CLEAN, batch, batch.x))
        clean_forwards, clean_seconds = clean_forwards + forwards, clean_seconds + seconds
    frames, totals = [], {}
    for i, (name, threat) in enumerate(att.cfg.threats.items()):
        per_batch, forwards, gradients = [], clean_forwards if i == 0 else 0, {}
        for batch in parts:
            t = Threat(att, Progress(units, att, f"{model}/{name}"), threat, batch)
            t.runs.append(cleans[batch.b])
            survivors = main_units(t, cleans[batch.b], routes)
            for route, values in (check_units(t, cleans[batch.b], survivors) if i == 0 else {}).items():
                gradients.setdefault(route, []).extend(values.tolist())
            per_batch.append(t.runs)
            forwards += t.forwards
        if per_batch:
            runs = [O.concat(list(run_parts)) for run_parts in zip(*per_batch)]
            frames.append(O.records(runs, np.concatenate([batch.index for batch in parts]), model, name))
        totals[name] = {"forwards": forwards, "gradients": gradients}
    return frames, {"threats": totals, "wall_time_s": clean_seconds}  # of the clean judgement: the cost column


def job_key(**parts) -> str:
    """The identity of one job's work: a resumed job only continues units of the same configuration
    and inputs."""
    return config_digest(parts)


def state_digest(module: torch.nn.Module) -> str:
    """SHA-256 of a module's parameters and buffers: a retrained defence invalidates its units."""
    h = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def calibrated_limit(model, calibration: torch.Tensor, fpr: float, seed: int, batch_size: int, device) -> float:
    """The detector's threshold: the (1 - fpr) quantile of the clean calibration images' scores."""
    torch.manual_seed(seed)
    with torch.no_grad():
        scores = [detection.scores(x, model.recover(x).clamp(0, 1))
                  for x in (c.to(device) for c in calibration.split(batch_size))]
    return detection.threshold(np.concatenate(scores) if scores else np.zeros(0), fpr)


def from_params(p: dict, args) -> dict:
    """The values of ``run`` that come from the validated params (and this job's ``args``): the
    one translation, used by the CLI and by :func:`workload`."""
    d = p["evaluate"]["detection"]
    return {"defence": args.defence, "shard": args.shard,
            "spec": entry(p["evaluate"]["defences"], args.defence, "defence", "evaluate.defences"),
            "cfg": section(AdaptiveConfig, budget(p["adaptive"], args.defence)),
            "calibration_share": d["calibration_share"], "fpr": d["fpr"], "columns": p["attack"]["run"],
            "victim_cfg": section(victims.VictimConfig, p["victim"]), "seed": p["seed"]}


def run(*, defence: str, shard: int, spec: dict, cfg: AdaptiveConfig, calibration_share: float, fpr: float,
        columns: list[str], pool_path: str | Path, adversarial_dir: str | Path, victim_path: str | Path,
        victim_cfg: victims.VictimConfig, models_dir: str | Path, seed: int, device, out_path: str | Path,
        totals_path: str | Path) -> dict:
    """Run every unit of shard ``shard`` of ``defence``'s adaptive evaluation (resuming from the
    finished ones); write its per-image records (``out_path``) and totals (``totals_path``)."""
    victim_checksum, out_path = sha256_file(victim_path), Path(out_path)
    data = load_data(pool_path=pool_path, adversarial_dir=adversarial_dir, columns=columns,
                     victim_checksum=victim_checksum, n=cfg.n, calibration_share=calibration_share, seed=seed)
    parts, victim = batches(data, cfg, shard, seed), inference.prepare(victims.load(victim_path, victim_cfg), device)
    models = {train_set or "": defences.build(spec, models_dir, train_set, victim).to(device)
              for train_set in model_sets(spec, cfg.train_sets)}
    units = Units(out_path.with_name(out_path.name + ".partial"), job_key(
        defence=defence, shard=shard, spec=spec, cfg=cfg, columns=columns, fpr=fpr, seed=seed,
        calibration_share=calibration_share, victim=victim_checksum, pool=sha256_file(pool_path),
        models={name: state_digest(m) for name, m in models.items()}))
    frames, totals = [], {"models": {}, "n": int(sum(len(b.index) for b in parts))}
    for name, model in models.items():
        classifier = defences.classifier(model, victim, device)
        att = Attacker(classifier, model, defences.adaptive_needs(spec), cfg, seed, device)
        att.limit = calibrated_limit(model, data.calibration, fpr, seed, cfg.batch_size, device)
        model_frames, model_totals = attack_model(att, units, name, parts)
        frames += model_frames
        totals["models"][name] = {**model_totals, "classifier": "victim" if classifier is victim else "own",
                                  "draws": att.draws, "eot": att.eot, "shape": list(data.x.shape[1:])}
    write_csv_gz(out_path, pd.concat(frames, ignore_index=True) if frames else O.empty_records())
    write_json(totals_path, totals)
    log.info("%s shard %d: %d units computed, %d resumed from a killed run", defence, shard, units.computed,
             units.resumed)
    units.remove()
    return totals


def _passes(spec: dict) -> int:
    return adaptive.REGISTRY.passes(spec)


def gradient_passes(cfg: AdaptiveConfig, eot: int, routes: int) -> tuple[int, int, int]:
    """Per image and model, without the cascade's saving (an upper bound): the gradients through one
    route's attacks (every threat); those of the sanity checks through every route (on the checks'
    subset: charged per attacked image in proportion) and of the detection-aware PGD; the
    gradient-free queries."""
    per_route, queries = 0, 0
    for threat in cfg.threats.values():
        for spec in cfg.attacks.values():
            if gradient_free(spec):
                queries += _passes(spec)
            elif not (eot > 1 and spec["method"] == "pgd" and threat["norm"] == "L2"):
                per_route += _passes(spec) * eot
    c, attacks = cfg.checks, sum(_passes(s) for s in cfg.attacks.values() if not gradient_free(s))
    share = min(c.n / cfg.n, 1.0) if c.n and cfg.n else 1.0
    checks_cost = routes * (c.steps * (1 + len(c.eps_sweep)) * eot + 2 * attacks * eot * (2 if eot > 1 else 1) + 1)
    return per_route, round(share * checks_cost) + cfg.detection_aware.steps * eot * len(cfg.threats), queries


def workload(p: dict, job: scale.Job) -> list[scale.Load]:
    """Every route's gradients (:func:`gradient_passes`) and the defended answers, per attacked model,
    on this shard's share of the attacked images."""
    job_cfg, size = from_params(p, job.args), p["sample"]["image_size"]
    spec, cfg = job_cfg["spec"], job_cfg["cfg"]
    n = cfg.n or round(p["sample"]["pools"][p["evaluate"]["pool"]]["n"] * (1 - p["evaluate"]["detection"]["calibration_share"]))
    n = sum(e - s for _, s, e in shard_batches(n, cfg.batch_size, job_cfg["shard"], len(cfg.shards)))
    victim = scale.trained_victim(p, job)
    sets = model_sets(spec, cfg.train_sets)
    defence = defences.build(spec, job.path(job.args.models), sets[0], victim)
    classifier, needs = defences.classifier(defence, victim), defences.adaptive_needs(spec)
    routes = routes_for(needs["differentiable"], needs["surrogate"])
    per_route, extra, queries = gradient_passes(cfg, cfg.eot if needs["random"] else 1, len(routes))
    images, shape = n * len(sets), (3, size, size)
    loads = [scale.Load(f"route {r}", Defended(classifier, defence, r), (defence, classifier), "grad", cfg.batch_size,
                        images * (per_route + (extra if i == 0 else 0)), shape) for i, r in enumerate(routes)]
    judged = len(p["attack"]["run"]) + len(routes) * len(cfg.attacks) + 2
    answers = (1 + len(cfg.threats) * judged) * (cfg.draws if needs["random"] else 1) * 2 + queries
    return loads + [scale.Load("defended answers and detection scores", Defended(classifier, defence, routes[0]),
                               (defence, classifier), "forward", cfg.batch_size, images * answers, shape)]
