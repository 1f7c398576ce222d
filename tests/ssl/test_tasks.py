"""The self-supervised tasks: InfoNCE against a hand computation, what each head reads, and the
head files (round trip, another classifier's features, code in the file)."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from advrecover import ssl
from advrecover.ssl.contrastive import info_nce
from advrecover.ssl.inpainting import centre


def hand_info_nce(z: torch.Tensor, views: int, temperature: float) -> float:
    """003's L_s written out with loops: every (anchor, positive) pair, the softmax over all other rows."""
    z = torch.nn.functional.normalize(z, dim=1).tolist()
    n, b = len(z), len(z) // views
    sim = [[sum(p * q for p, q in zip(z[i], z[j])) / temperature for j in range(n)] for i in range(n)]
    terms = []
    for i in range(n):
        denominator = sum(math.exp(sim[i][k]) for k in range(n) if k != i)
        terms += [-math.log(math.exp(sim[i][j]) / denominator) for j in range(n) if j != i and j % b == i % b]
    return sum(terms) / len(terms)


@pytest.mark.parametrize("views", [2, 3])
def test_info_nce_equals_the_hand_computation(views):
    z = torch.randn(views * 2, 5, generator=torch.Generator().manual_seed(views), dtype=torch.float64)
    assert float(info_nce(z, views, 0.2)) == pytest.approx(hand_info_nce(z, views, 0.2), rel=1e-9)


def test_info_nce_is_low_when_views_agree_and_high_when_they_do_not():
    base = torch.eye(4, dtype=torch.float64)  # four images, orthogonal embeddings
    agree = info_nce(torch.cat([base, base]), 2, 0.2)
    swapped = info_nce(torch.cat([base, base[[1, 0, 3, 2]]]), 2, 0.2)
    assert agree < 0.1 < 5 < swapped


def features(x: torch.Tensor) -> torch.Tensor:
    """A fixed feature map: per-channel means of four quadrants (12 values)."""
    return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)


def test_inpainting_never_sees_the_centre_it_fills():
    torch.manual_seed(0)
    head = ssl.build({"method": "inpainting", "width": 4}, 12, 16).eval()
    x = torch.rand(2, 3, 16, 16)
    other = x.clone()
    c = centre(16)
    other[:, :, c, c] = torch.rand_like(other[:, :, c, c])
    seen = []
    head.decode.register_forward_hook(lambda m, i, out: seen.append(out))
    head.loss(features, x), head.loss(features, other)
    assert torch.equal(seen[0], seen[1])  # the same prediction: only the masked input reaches the features
    assert head.loss(features, x) != head.loss(features, other)  # the target is the true centre


def test_rotation_targets_come_from_the_rotation():
    torch.manual_seed(0)
    head = ssl.build({"method": "rotation", "hidden": 8}, 12, 16)
    x = torch.rand(3, 3, 16, 16)
    logits = head.classify(features(torch.cat([torch.rot90(x, k, (2, 3)) for k in range(4)])))
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([0] * 3 + [1] * 3 + [2] * 3 + [3] * 3))
    assert torch.allclose(head.loss(features, x), expected)


def test_contrastive_views_are_random_and_differentiable():
    head = ssl.build({"method": "contrastive", "projection": 4, "views": 2}, 12, 16)
    x = torch.rand(3, 3, 16, 16, requires_grad=True)
    losses = [head.loss(features, x) for _ in range(2)]
    assert losses[0] != losses[1]
    (grad,) = torch.autograd.grad(losses[0], x)
    assert grad.abs().sum() > 0


def test_head_files_round_trip_and_refuse_what_they_cannot_serve(tmp_path):
    spec = {"method": "rotation", "hidden": 8}
    head = ssl.build(spec, 12, 16)
    ssl.save_head(tmp_path / "rotation.pt", spec, head, 12, 16)
    loaded = ssl.load_head(tmp_path / "rotation.pt", 12)
    assert all(torch.equal(a, b) for a, b in zip(head.state_dict().values(), loaded.state_dict().values()))
    assert not any(p.requires_grad for p in loaded.parameters())
    with pytest.raises(ValueError, match="12-d features, the victim gives 64-d"):
        ssl.load_head(tmp_path / "rotation.pt", 64)
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(print))
    with pytest.raises(ValueError, match="refusing|not a readable"):
        ssl.load_head(tmp_path / "evil.pt", 12)


@pytest.mark.parametrize("spec, message", [({"method": "jigsaw"}, "unknown self-supervised task"),
                                           ({"method": "rotation", "depth": 2}, "takes no parameter 'depth'")])
def test_bad_entries_are_named(spec, message):
    with pytest.raises(ValueError, match=message):
        ssl.check({"mine": spec})


def test_bad_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="multiple of 8"):
        ssl.build({"method": "inpainting"}, 12, 20)
    with pytest.raises(ValueError, match="at least 2"):
        ssl.build({"method": "contrastive", "views": 1}, 12, 16)
