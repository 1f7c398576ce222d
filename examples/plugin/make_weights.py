"""Regenerate ``weights/small_cnn_digits16.pt``: SmallCNN's weights for the built-in digits at 16 pixels,
the task of advrecover's tiny configuration (``configs/tiny.yaml``), which deploys this classifier.

A user's classifier arrives trained; this script stands in for that training, on images of its own
(another seed than the tiny configuration's, so no evaluated image is a training image). Run from
the advrecover repository root: ``python examples/plugin/make_weights.py`` (half a minute on 2 cores).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from advrecover import params
from advrecover.data.pools import read_pool
from advrecover.data.tensors import to_tensor
from advrecover_example.classifier import SmallCNN

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "weights/small_cnn_digits16.pt"
ARGS = {"num_classes": 10, "width": 16}  # configs/tiny.yaml's victim.module_args


def draw(work: Path, n: int = 12000, seed: int = 1000):
    """``n`` labelled 16-pixel digits through advrecover's own sample stage, at ``seed``."""
    p = params.read(HERE.parents[1] / "configs/tiny.yaml")
    p["seed"] = seed
    p["sample"]["pools"]["victim"]["n"] = n
    (work / "params.yaml").write_text(yaml.safe_dump(p))
    subprocess.run(["advrecover", "sample", "--params", str(work / "params.yaml"), "--out", str(work / "pools"),
                    "--metrics", str(work / "sample.json"), "--quiet"], check=True)
    pool = read_pool(work / "pools/victim.h5")
    return to_tensor(pool.images), torch.from_numpy(pool.labels)


def main() -> None:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as work:
        x, y = draw(Path(work))
    held = len(x) // 10
    model = SmallCNN(**ARGS)
    epochs = 20
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for epoch in range(epochs):
        model.train()
        for idx in torch.randperm(len(x) - held).split(128):
            loss = F.cross_entropy(model(x[held:][idx]), y[held:][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        schedule.step()
        with torch.no_grad():
            accuracy = (model.eval()(x[:held]).argmax(1) == y[:held]).float().mean().item()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}, held-out accuracy {accuracy:.3f}", file=sys.stderr)
    WEIGHTS.parent.mkdir(exist_ok=True)
    torch.save(model.state_dict(), WEIGHTS)
    print(f"wrote {WEIGHTS}")


if __name__ == "__main__":
    main()
