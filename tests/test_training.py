"""Shared training mechanics: history CSV, resume after a kill, NaN detection, schedule scaling."""

from __future__ import annotations

import pytest
import torch

from advrecover import training


class Killed(Exception):
    pass


def make(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, training.scale_milestones([500, 1000], 1500, 6))
    return model, opt, sched


def run(tmp_path, kill_at=None, name="a"):
    model, opt, sched = make()
    x, y = torch.randn(64, 4, generator=torch.Generator().manual_seed(1)), torch.randn(64, 1)

    def epoch_step(epoch, gen):
        if epoch == kill_at:
            raise Killed
        total = 0.0
        for idx in torch.randperm(64, generator=gen).split(16):  # data order from the generator
            loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])  # dropout from the global RNG
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        return {"mse": total / 4, "lr": opt.param_groups[0]["lr"]}

    rows = training.fit(model, opt, sched, 6, epoch_step, tmp_path / f"{name}.ckpt", tmp_path / f"{name}.csv",
                        "key", seed=0, what="toy", progress=False)
    return model, rows


def test_history_csv_and_checkpoint_cleanup(tmp_path):
    _, rows = run(tmp_path)
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert lines[0] == "epoch,mse,lr" and len(lines) == 7
    assert [r["lr"] for r in rows] == [0.05, 0.05, 0.005, 0.005, 0.0005, 0.0005]  # 500/1000 of 1500 -> 2/4 of 6
    assert not (tmp_path / "a.ckpt").exists()


def test_resume_after_a_killed_epoch_gives_the_same_weights(tmp_path):
    reference, ref_rows = run(tmp_path, name="ref")
    with pytest.raises(Killed):
        run(tmp_path, kill_at=4, name="b")
    assert (tmp_path / "b.ckpt").exists() and not (tmp_path / "b.csv").exists()
    resumed, rows = run(tmp_path, name="b")
    assert rows == ref_rows
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_of_another_configuration_is_ignored(tmp_path):
    with pytest.raises(Killed):
        run(tmp_path, kill_at=3, name="c")
    model, opt, _ = make()
    seen = []
    training.fit(model, opt, None, 2, lambda e, g: seen.append(e) or {"x": 1.0}, tmp_path / "c.ckpt",
                 tmp_path / "c.csv", "other-key", 0, "toy", progress=False)
    assert seen == [1, 2]


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_loss_names_epoch_and_term(tmp_path, value):
    model, opt, _ = make()
    step = lambda epoch, gen: {"recon": 1.0, "kl": value if epoch == 2 else 0.5}  # noqa: E731
    with pytest.raises(training.NonFiniteLoss, match=r"'kl' is (nan|inf) at epoch 2"):
        training.fit(model, opt, None, 5, step, tmp_path / "n.ckpt", tmp_path / "n.csv", "k", 0, "toy", progress=False)


def test_scale_milestones_keeps_the_shape():
    assert training.scale_milestones([500, 1000], 1500, 1500) == [500, 1000]
    assert training.scale_milestones([500, 1000], 1500, 30) == [10, 20]
    assert training.scale_milestones([500, 1000], 1500, 2) == [1]
