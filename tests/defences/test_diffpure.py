"""The diffpure defence on a tiny diffusers U-Net with constructed (seeded random) weights: its exact
gradient through the reverse chain, checkpointing, randomness and its refusals."""

from __future__ import annotations

import pytest
import torch

from advrecover import defences
from advrecover.defences.diffpure import DiffPure
from advrecover.models import diffusion

SPEC = diffusion.DiffusionSpec(widths=(4, 8), layers=1, groups=2, timesteps=1000, beta_start=1e-4, beta_end=0.02)


@pytest.fixture
def models(tmp_path):
    torch.manual_seed(0)
    (tmp_path / "diffusion").mkdir()
    diffusion.save(tmp_path / "diffusion" / "diffusion.pt", diffusion.unet(SPEC, 8), diffusion.schedule(SPEC), 20)
    return tmp_path


def projected(defence: DiffPure, v: torch.Tensor):
    """x -> <recover(x), v> with the same diffusion and step noise at every call."""
    def f(x):
        torch.manual_seed(1)
        return (defence.recover(x) * v).sum()
    return f


@pytest.mark.parametrize("steps", [10, 2], ids=["ddpm", "ddim"])
def test_the_full_gradient_through_the_reverse_chain_is_exact_and_checkpointing_keeps_it(steps):
    """Autograd's directional derivative through every step equals a central finite difference (in
    float64, fixed noise), with and without per-step gradient checkpointing (bit-identical)."""
    torch.manual_seed(0)
    defence = DiffPure(diffusion.unet(SPEC, 8).double(), diffusion.schedule(SPEC), 10, steps)
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64).mul(0.8).add(0.1).requires_grad_(True)
    v, direction = torch.randn_like(x), torch.randn_like(x)
    f = projected(defence, v)
    (grad,) = torch.autograd.grad(f(x), x)
    h = 1e-6
    with torch.no_grad():
        finite = (f(x + h * direction) - f(x - h * direction)) / (2 * h)
    assert float((grad * direction).sum()) == pytest.approx(float(finite), rel=1e-6, abs=1e-9)
    defence.checkpointed = False
    (plain,) = torch.autograd.grad(f(x), x)
    assert torch.equal(grad, plain)


def test_checkpointing_recomputes_each_step_instead_of_keeping_it():
    """With checkpointing the graph keeps one input per step, not every activation of the U-Net: the
    saved tensors do not grow with the U-Net's depth times the steps."""
    torch.manual_seed(0)
    defence = DiffPure(diffusion.unet(SPEC, 8), diffusion.schedule(SPEC), 20, 20)
    x = torch.rand(2, 3, 8, 8, requires_grad=True)

    def saved(checkpointed: bool) -> int:
        defence.checkpointed, count = checkpointed, [0]

        def pack(t):
            count[0] += t.numel()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            defence.recover(x).sum()
        return count[0]

    assert saved(True) * 5 < saved(False)


def test_it_is_random_and_lands_in_the_image_range(models):
    defence = defences.build({"method": "diffpure", "t_star": 10, "steps": 2}, models)
    x = torch.rand(4, 3, 8, 8)
    with torch.no_grad():
        a, b = defence.recover(x), defence.recover(x)
        torch.manual_seed(3)
        c = defence.recover(x)
        torch.manual_seed(3)
        d = defence.recover(x)
    assert not torch.equal(a, b) and torch.equal(c, d)  # a fresh draw per call; seeded, the same
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert defences.adaptive_needs({"method": "diffpure"}) == {"differentiable": True, "random": True,
                                                                 "surrogate": False}


def test_a_small_t_star_stays_near_the_input_and_a_large_one_does_not(models):
    """Diffusing to t* keeps sqrt(abar) of the image: the purified image moves further with t*."""
    x = torch.rand(8, 3, 8, 8)
    moved = []
    for t_star in (2, 20):
        torch.manual_seed(0)
        with torch.no_grad():
            moved.append(float((defences.build({"method": "diffpure", "t_star": t_star, "steps": 2}, models)
                                .recover(x) - x).abs().mean()))
    assert moved[0] < moved[1]


def test_refusals_name_the_cause(models):
    with pytest.raises(ValueError, match=r"t_star 40 beyond the timesteps .* \(up to 20\)"):
        defences.build({"method": "diffpure", "t_star": 40, "steps": 2}, models)
    with pytest.raises(ValueError, match="t_star 10 must be a multiple of steps 3"):
        defences.build({"method": "diffpure", "t_star": 10, "steps": 3}, models)
    torch.save({"unet": {}}, models / "diffusion" / "diffusion.pt")
    with pytest.raises(ValueError, match="not written by the train_diffusion stage"):
        defences.build({"method": "diffpure", "t_star": 10, "steps": 2}, models)
