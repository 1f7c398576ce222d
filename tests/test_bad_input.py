"""Bad input, one row per class: a clear error naming the cause, and nothing overwritten or lost.

Every case starts from a copy of a small, complete workspace (pools, victim, a test-pool attack
set, a CAE), breaks one thing, runs one stage through the CLI and checks: exit status 2, the
message names the parameter, file or key, every output the stage would write still holds its
previous bytes, no temporary file is left, and no payload ran (its marker file is absent).
"""

from __future__ import annotations

import errno
import pickle
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from advrecover.cli import main
from helpers import SUMMARY, corrupt_image, save_image, tiny_params

MESSAGES: dict[str, str] = {}  # case -> the error line the user saw (printed in the summary table)
MARKER = "payload-ran"  # a payload that runs creates this file in the workspace


def argv(stage: str, ws: Path) -> list[str]:
    """The stage's command line in workspace ``ws`` (the shapes of dvc.yaml's commands)."""
    p = ["--params", str(ws / "params.yaml"), "--quiet"]
    return {
        "sample": ["sample", *p, "--out", f"{ws}/data/pools", "--metrics", f"{ws}/metrics/sample.json", "--workers", "1"],
        "victim": ["victim", *p, "--pools", f"{ws}/data/pools", "--model", f"{ws}/models/victim.pt",
                   "--metrics", f"{ws}/metrics/victim.json", "--history", f"{ws}/metrics/victim_train.csv"],
        "attack": ["attack", *p, "--pool", "test", "--attack", "fgsm", "--shard", "0", "--pools", f"{ws}/data/pools",
                   "--victim", f"{ws}/models/victim.pt", "--out", f"{ws}/data/adversarial/test/fgsm/shard-0.h5"],
        "train_cae": ["train_cae", *p, "--variant", "default", "--pool", f"{ws}/data/pools/cae.h5",
                      "--model", f"{ws}/models/cae/default.pt", "--history", f"{ws}/metrics/cae.csv",
                      "--metrics", f"{ws}/metrics/cae.json"],
        "train_aae": ["train_aae", *p, "--variant", "default", "--train-set", "fgsm", "--pool", f"{ws}/data/pools/test.h5",
                      "--sets", f"{ws}/data/adversarial/test", "--cae", f"{ws}/models/cae/default.pt",
                      "--model", f"{ws}/models/aae.pt", "--history", f"{ws}/metrics/aae.csv",
                      "--metrics", f"{ws}/metrics/aae.json"],
        "evaluate": evaluate_argv("none", ws, p),
        "evaluate_reversal": evaluate_argv("reversal", ws, p),
    }[stage]


def evaluate_argv(defence: str, ws: Path, p: list[str]) -> list[str]:
    return ["evaluate", *p, "--defence", defence, "--pool", f"{ws}/data/pools/test.h5", "--adversarial",
            f"{ws}/data/adversarial/test", "--victim", f"{ws}/models/victim.pt", "--models", f"{ws}/models",
            "--out", f"{ws}/results/defences/{defence}", "--metrics", f"{ws}/metrics/defences/{defence}.json"]


OUTPUTS = {  # what each stage writes, relative to the workspace: all must survive a failed run
    "sample": ["data/pools/cae.h5", "data/pools/aae.h5", "data/pools/test.h5", "data/pools/victim.h5",
               "metrics/sample.json"],
    "victim": ["models/victim.pt", "metrics/victim.json", "metrics/victim_train.csv"],
    "attack": ["data/adversarial/test/fgsm/shard-0.h5"],
    "train_cae": ["models/cae/default.pt", "metrics/cae.csv", "metrics/cae.json"],
    "train_aae": ["models/aae.pt", "metrics/aae.csv", "metrics/aae.json"],
    "evaluate": ["results/defences/none/seen.csv", "results/defences/none/unseen.csv", "metrics/defences/none.json"],
    "evaluate_reversal": ["results/defences/reversal/seen.csv", "results/defences/reversal/unseen.csv",
                          "metrics/defences/reversal.json"],
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """Tiny params with one attack (fgsm) and the `none` defence; pools, victim, the fgsm test set
    (an AAE training set too: train_aae reads it against the test pool) and a CAE."""
    ws = tmp_path_factory.mktemp("bad-input")
    p = tiny_params()
    p["attack"].update(run=["fgsm"])
    p["recovery"]["train_on"] = ["fgsm"]
    p["report"]["attack"] = "fgsm"
    p["evaluate"]["defences"] = {"none": {"method": "none"}}
    (ws / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    for stage in ("sample", "victim", "attack", "train_cae"):
        assert main(argv(stage, ws)) == 0, stage
    shutil.copy(ws / "data/adversarial/test/fgsm/shard-0.h5", ws / "data/adversarial/test/fgsm.h5")
    for rel in [r for rels in OUTPUTS.values() for r in rels if not (ws / r).exists()]:
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text("previous output\n")  # stands for the result of an earlier good run
    return ws


# ---- the ways to break a workspace: each edits params (p) and/or files under ws ----

def params_text(text: str):
    def edit(ws, p, mp):
        (ws / "params.yaml").write_text(text.replace("MARKER", str(ws / MARKER)))
        return False  # the params file is written as it is
    return edit


def set_pool(name: str, **cfg):
    def edit(ws, p, mp):
        p["sample"]["pools"][name] = {**cfg, "path": str(ws / cfg["path"]) if "path" in cfg else None}
        p["sample"]["pools"][name] = {k: v for k, v in p["sample"]["pools"][name].items() if v is not None}
    return edit


def images_with(bad: Callable[[Path], None]):
    """A coco-style directory of four good images and one bad one, with no tolerance for bad files."""
    def edit(ws, p, mp):
        folder = ws / "photos"
        for i in range(4):
            save_image(folder / f"good{i}.png", seed=i)
        bad(folder)
        p["sample"]["max_bad_fraction"] = 0.0
        p["sample"]["pools"]["cae"] = {"source": "coco", "path": str(folder), "n": 5}
    return edit


def cifar_batch(content: Callable[[Path], bytes]):
    def edit(ws, p, mp):
        d = ws / "cifar" / "cifar-10-batches-py"
        d.mkdir(parents=True)
        batch = {b"labels": [0, 1], b"data": np.zeros((2, 3072), np.uint8)}
        for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
            (d / name).write_bytes(pickle.dumps(batch))
        (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a"] * 10}))
        (d / "data_batch_3").write_bytes(content(ws))
        p["sample"]["pools"]["aae"] = {"source": "cifar10", "path": str(ws / "cifar"), "split": "train", "n": 4}
    return edit


class Payload:
    """Unpickling this runs ``open(marker, "w")``: a real payload, as a tampered file would carry."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def evil_checkpoint(ws: Path) -> bytes:
    path = ws / "evil.pt"
    torch.save({"fc.weight": torch.zeros(1), "hook": Payload(ws / MARKER)}, path)
    return path.read_bytes()


def rewrite_h5(rel: str, change: Callable[[h5py.File], None]):
    def edit(ws, p, mp):
        with h5py.File(ws / rel, "a") as f:
            change(f)
    return edit


def replace_dataset(name: str, data):
    def change(f):
        del f[name]
        f[name] = data
    return change


def truncate(rel: str):
    def edit(ws, p, mp):
        data = (ws / rel).read_bytes()
        (ws / rel).write_bytes(data[: len(data) // 2])
    return edit


def write_file(rel: str, content: Callable[[Path], bytes]):
    def edit(ws, p, mp):
        (ws / rel).write_bytes(content(ws))
    return edit


def set_param(path: str, value):
    def edit(ws, p, mp):
        *keys, last = path.split(".")
        node = p
        for k in keys:
            node = node[k]
        node[last] = value(ws) if callable(value) else value
    return edit


def disk_full(target: str, attribute: str):
    """``target.attribute`` raises ENOSPC, as a write to a full disk does."""
    def edit(ws, p, mp):
        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")
        mp.setattr(target + "." + attribute, full)
    return edit


def both(*edits):
    def edit(ws, p, mp):
        for e in edits:
            e(ws, p, mp)
    return edit


@dataclass
class Case:
    name: str
    stage: str
    edit: Callable
    message: str
    markers: list[str] = field(default_factory=list)


def pop(path: str):
    def edit(ws, p, mp):
        *keys, last = path.split(".")
        node = p
        for k in keys:
            node = node[k]
        node.pop(last)
    return edit


VICTIM_CKPT = both(set_param("victim.mode", "checkpoint"))
CASES = [
    # params: type, unknown key, missing key, out of range, names that do not exist, YAML, code in YAML
    Case("params: wrong type", "sample", set_param("victim.epochs", "ten"), "victim.epochs: 'ten' is not of type 'integer'"),
    Case("params: unknown key", "sample", set_param("victim.epoch", 3), "victim: unknown key(s) 'epoch'"),
    Case("params: missing key", "sample", pop("seed"), "seed: required key is missing"),
    Case("params: out of range", "sample", set_param("victim.lr", -1.0), "victim.lr: -1.0 is less than or equal to"),
    Case("params: unknown attack", "sample", set_param("attack.run", ["fgsm", "nope"]),
         "attack.run: ['nope'] are not defined under attack.instances"),
    Case("params: unknown attack method", "attack", set_param("attack.instances.fgsm.method", "magic"),
         "attack.instances.fgsm.method"),
    Case("params: unknown defence", "evaluate", set_param("evaluate.defences.extra", {"method": "magic"}),
         "evaluate.defences.extra.method: unknown defence 'magic'"),
    Case("params: not YAML", "sample", params_text("seed: [1, 2\n"), "is not valid YAML"),
    Case("params: code in a YAML tag", "sample",
         params_text("seed: !!python/object/apply:os.system ['touch MARKER']\n"), "is not valid YAML", [MARKER]),
    # datasets: missing, empty, not a directory, a pickle batch that is corrupt or carries code
    Case("dataset: missing directory", "sample", set_pool("aae", source="imagefolder", path="absent", n=4),
         "sample.pools.aae.path: directory not found"),
    Case("dataset: empty directory", "sample",
         both(lambda ws, p, mp: (ws / "empty").mkdir(), set_pool("cae", source="coco", path="empty", n=4)),
         "sample.pools.cae.path: no image files under"),
    Case("dataset: a file, not a directory", "sample",
         both(lambda ws, p, mp: (ws / "afile").write_text("x"), set_pool("test", source="imagenet_r", path="afile", n=4)),
         "sample.pools.test.path: not a directory"),
    Case("dataset: no class directories", "sample",
         both(lambda ws, p, mp: save_image(ws / "flat" / "a.png"), set_pool("test", source="imagefolder", path="flat", n=4)),
         "sample.pools.test.path: no class directories"),
    Case("dataset: CIFAR-10 batch missing", "sample",
         both(cifar_batch(lambda ws: b""), lambda ws, p, mp: (ws / "cifar/cifar-10-batches-py/data_batch_3").unlink()),
         "sample.pools.aae.path: CIFAR-10 file missing"),
    Case("dataset: CIFAR-10 batch corrupt", "sample", cifar_batch(lambda ws: b"not a pickle"),
         "sample.pools.aae.path: corrupt CIFAR-10 batch"),
    Case("dataset: CIFAR-10 batch carrying code", "sample",
         cifar_batch(lambda ws: pickle.dumps(Payload(ws / MARKER))), "corrupt CIFAR-10 batch", [MARKER]),
    Case("dataset: HDF5 pool source without images", "sample",
         both(lambda ws, p, mp: h5py.File(ws / "other.h5", "w").close(), set_pool("cae", source="hdf5", path="other.h5", n=4)),
         "sample.pools.cae.path: cannot read HDF5 pool"),
    # image files: truncated, zero bytes, not an image
    Case("image: truncated JPEG", "sample", images_with(lambda d: corrupt_image(d / "bad.jpg")), "bad.jpg"),
    Case("image: zero bytes", "sample", images_with(lambda d: (d / "empty.png").write_bytes(b"")), "empty.png"),
    Case("image: not an image", "sample", images_with(lambda d: (d / "notes.png").write_text("hello")), "notes.png"),
    # pools and adversarial sets: shape, dtype, missing dataset, truncated file
    Case("pool: wrong shape", "victim", rewrite_h5("data/pools/victim.h5", replace_dataset("images", np.zeros((4, 16, 16), np.uint8))),
         "'images' must be (N, H, H, 3) RGB"),
    Case("pool: wrong dtype", "train_cae", rewrite_h5("data/pools/cae.h5", replace_dataset("images", np.zeros((4, 16, 16, 3), np.float32))),
         "'images' must be uint8"),
    Case("pool: missing dataset", "victim", rewrite_h5("data/pools/test.h5", lambda f: f.__delitem__("labels")),
         "dataset(s) ['labels'] missing"),
    Case("pool: truncated file", "train_cae", truncate("data/pools/cae.h5"), "cae.h5 is unreadable or truncated"),
    Case("adversarial set: wrong shape", "evaluate",
         rewrite_h5("data/adversarial/test/fgsm.h5", replace_dataset("pred_adv", np.zeros(3, np.int64))),
         "'pred_adv' must hold"),
    Case("adversarial set: wrong dtype", "evaluate",
         rewrite_h5("data/adversarial/test/fgsm.h5", replace_dataset("images", np.zeros((40, 16, 16, 3), np.int32))),
         "'images' must be one of"),
    Case("adversarial set: missing dataset", "evaluate",
         rewrite_h5("data/adversarial/test/fgsm.h5", lambda f: f.__delitem__("label")), "dataset(s) ['label'] missing"),
    Case("adversarial set: truncated file", "evaluate", truncate("data/adversarial/test/fgsm.h5"),
         "fgsm.h5 is not a readable HDF5 file"),
    Case("adversarial set: made against another victim", "evaluate",
         rewrite_h5("data/adversarial/test/fgsm.h5", lambda f: f.attrs.__setitem__("victim_checksum", "0" * 64)),
         "made against a different victim"),
    # checkpoints: another architecture, not a checkpoint, code inside
    Case("checkpoint: victim of another architecture", "victim",
         both(VICTIM_CKPT, set_param("victim.checkpoint", lambda ws: str(ws / "models/victim.pt")),
              set_param("victim.widths", [8, 8])), "holds weights of another architecture"),
    Case("checkpoint: a victim where the CAE belongs", "train_aae",
         write_file("models/cae/default.pt", lambda ws: (ws / "models/victim.pt").read_bytes()),
         "was not written by the train_cae/train_aae stages"),
    Case("checkpoint: truncated", "attack", truncate("models/victim.pt"), "is not a readable torch checkpoint"),
    Case("checkpoint: victim carrying code", "attack", write_file("models/victim.pt", evil_checkpoint),
         "victim model: refusing", [MARKER]),
    Case("checkpoint: a self-supervised head carrying code", "evaluate_reversal",
         both(set_param("evaluate.defences.reversal", {"method": "reversal", "tasks": {"contrastive": 1.0}}),
              lambda ws, p, mp: (ws / "models/ssl").mkdir(parents=True, exist_ok=True),
              write_file("models/ssl/contrastive.pt", evil_checkpoint)),
         "self-supervised head: refusing", [MARKER]),
    Case("checkpoint: victim.checkpoint carrying code", "victim",
         both(VICTIM_CKPT, write_file("evil.pt", evil_checkpoint), set_param("victim.checkpoint", lambda ws: str(ws / "evil.pt"))),
         "victim.checkpoint: refusing", [MARKER]),
    # a disk that fills up during a write
    Case("disk full: writing a pool", "sample", disk_full("h5py.Group", "create_dataset"), "No space left on device"),
    Case("disk full: writing a model", "victim", disk_full("torch", "save"), "No space left on device"),
    Case("disk full: writing metrics", "train_cae", disk_full("pathlib.Path", "write_text"), "No space left on device"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_a_clear_error_and_loses_nothing(case, workspace, tmp_path, capsys, monkeypatch):
    ws = tmp_path / "ws"
    shutil.copytree(workspace, ws)
    before = {rel: (ws / rel).read_bytes() for rel in OUTPUTS[case.stage]}
    p = yaml.safe_load((ws / "params.yaml").read_text())
    if case.edit(ws, p, monkeypatch) is not False:
        with open(ws / "params.yaml", "w") as fh:  # not Path.write_text, which a disk-full case patches
            fh.write(yaml.safe_dump(p, sort_keys=False))
    code = main(argv(case.stage, ws))
    monkeypatch.undo()
    err = capsys.readouterr().err
    shown = [line for line in err.splitlines() if case.message in line]
    MESSAGES[case.name] = next((x for x in shown if ": error: " in x), shown[0] if shown else "").replace(str(ws), "<ws>")
    assert code == 2, err[-2000:]
    assert case.message in err, err[-2000:]
    assert "Traceback" not in err
    for rel, data in before.items():
        assert (ws / rel).read_bytes() == data, f"{rel} was changed by a failed run"
    assert not list(ws.rglob("*.tmp-*")), "a temporary file was left behind"
    for marker in case.markers:
        assert not (ws / marker).exists(), "the payload ran"
    rows = [f"| {name} | {line[:160]} |" for name, line in MESSAGES.items()]
    SUMMARY["bad-input table (tests/test_bad_input.py)"] = "\n".join(["| case | error shown |", "| --- | --- |", *rows])


def test_the_payloads_are_real(tmp_path):
    """The malicious files of the table do run code when loaded without protection."""
    data = pickle.dumps(Payload(tmp_path / "ran"))
    pickle.loads(data)
    assert (tmp_path / "ran").exists()
    torch.save({"hook": Payload(tmp_path / "ran2")}, tmp_path / "evil.pt")
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert (tmp_path / "ran2").exists()


def palette_image(value: int) -> Image.Image:
    image = Image.fromarray(np.zeros((20, 20), np.uint8), "P")
    image.putpalette([value] * 768)
    return image


@pytest.mark.parametrize("mode, make", [
    ("L", lambda: Image.fromarray(np.full((20, 20), 200, np.uint8), "L")),
    ("RGBA", lambda: Image.fromarray(np.full((20, 20, 4), 200, np.uint8), "RGBA")),
    ("P", lambda: palette_image(200)),
    ("I;16", lambda: Image.fromarray(np.full((20, 20), 200 * 257, np.uint16))),
])
def test_unusual_but_valid_images_become_rgb(tmp_path, mode, make):
    """Grayscale, RGBA, palette and 16-bit images are valid input: read as RGB with their values kept."""
    from advrecover.data.sources import read_image

    image = make()
    assert image.mode == mode
    image.save(tmp_path / "x.png")
    out = read_image(tmp_path / "x.png", 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - 200).max() <= 1


def test_hdf5_attributes_are_read_as_data_never_run(workspace, tmp_path):
    """Attributes of a set from a remote are strings or JSON to the readers, never code."""
    from advrecover.data.adversarial import read_adversarial

    path = tmp_path / "fgsm.h5"
    shutil.copy(workspace / "data/adversarial/test/fgsm.h5", path)
    code = f"__import__('os').system('touch {tmp_path / MARKER}')"
    with h5py.File(path, "a") as f:
        f.attrs["method"] = code
        f.attrs["params"] = code
    s = read_adversarial(path)
    assert s.attrs["method"] == code and s.attrs["params"] == code
    assert not (tmp_path / MARKER).exists()
