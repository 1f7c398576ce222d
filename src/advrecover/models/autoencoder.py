"""The 1-D convolutional VAEs of Li, Angelov and Suri (Sec. III) (CAE and AAE share this module).

An image becomes a sequence before the 1-D convolutions. The paper does not say how, so the
layout is a parameter:
  ``pixels``  channels = 3, length = H*W (row-major),
  ``rows``    channels = 3*W, length = H,
  ``patches`` channels = 3*p*p, length = (H/p)*(W/p) non-overlapping p x p patches.
``widths`` are the encoder's conv channel counts, the last one being the latent's channels
(their CAE: 512, 256, 128, 64); the decoder mirrors them back to the layout's channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Layout(nn.Module):
    """Image (N, 3, H, W) <-> sequence (N, C, L)."""

    def __init__(self, kind: str, image_size: int, patch: int = 4):
        super().__init__()
        if kind not in ("pixels", "rows", "patches"):
            raise ValueError(f"layout must be pixels, rows or patches, got {kind!r}")
        if kind == "patches" and image_size % patch:
            raise ValueError(f"layout patches: image size {image_size} is not a multiple of patch {patch}")
        self.kind, self.size, self.patch = kind, image_size, patch
        self.channels, self.length = {"pixels": (3, image_size ** 2), "rows": (3 * image_size, image_size),
                                      "patches": (3 * patch ** 2, (image_size // patch) ** 2)}[kind]

    def to_seq(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if self.kind == "pixels":
            return x.reshape(n, 3, -1)
        if self.kind == "rows":
            return x.permute(0, 1, 3, 2).reshape(n, 3 * self.size, self.size)
        return F.unfold(x, self.patch, stride=self.patch)

    def to_image(self, s: torch.Tensor) -> torch.Tensor:
        n = s.shape[0]
        if self.kind == "pixels":
            return s.reshape(n, 3, self.size, self.size)
        if self.kind == "rows":
            return s.reshape(n, 3, self.size, self.size).permute(0, 1, 3, 2)
        return F.fold(s, (self.size, self.size), self.patch, stride=self.patch)


def _stack(channels: list[int], kernel: int, stride: int, transpose: bool, last_act: bool) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(channels[:-1], channels[1:])):
        if transpose and stride > 1:
            layers.append(nn.ConvTranspose1d(a, b, kernel, stride, padding=kernel // 2, output_padding=stride - 1))
        else:
            layers.append(nn.Conv1d(a, b, kernel, 1 if transpose else stride, padding=kernel // 2))
        if i < len(channels) - 2 or last_act:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


class ConvVAE(nn.Module):
    """Encoder: len(widths) conv layers ending in mean and log-variance of a ``widths[-1]``-channel
    latent; decoder: len(widths) conv layers back to the image, sigmoid output in [0, 1]."""

    def __init__(self, image_size: int, layout: str, patch: int, widths: list[int], kernel: int, stride: int = 1):
        super().__init__()
        self.layout = Layout(layout, image_size, patch)
        self.architecture = {"layout": layout, "patch": patch, "widths": list(widths), "kernel": kernel, "stride": stride}
        if kernel % 2 == 0:
            raise ValueError(f"kernel must be odd (same-length padding), got {kernel}")
        if self.layout.length % stride ** len(widths):
            raise ValueError(f"sequence length {self.layout.length} is not divisible by stride**depth "
                             f"= {stride ** len(widths)}")
        c = self.layout.channels
        self.encoder = _stack([c, *widths[:-1]], kernel, stride, False, True)
        self.head = nn.Conv1d(widths[-2] if len(widths) > 1 else c, 2 * widths[-1], kernel,
                              stride, padding=kernel // 2)
        self.decoder = _stack([*reversed(widths), c], kernel, stride, True, False)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image -> (mu, logvar) of the latent sequence."""
        mu, logvar = self.head(self.encoder(self.layout.to_seq(x))).chunk(2, dim=1)
        return mu, logvar.clamp(-30, 20)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.layout.to_image(torch.sigmoid(self.decoder(z)))

    @staticmethod
    def sample(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Reparametrised draw z = mu + sigma * eps (Kingma & Welling); the mean in eval mode."""
        return mu + torch.randn_like(mu) * (0.5 * logvar).exp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, _ = self.encode(x)
        return self.decode(mu)


def sse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a - b||_2^2 of Li et al.'s eq. (1) and (6), as the mean over elements (PyTorch's MSELoss): with
    per-image sums the paper's SGD learning rate (0.03) diverges in the first epoch. In float32 under autocast."""
    return (a.float() - b.float()).pow(2).mean()


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) of Li et al.'s eq. (1) and (5), per latent element, averaged
    (in float32 under autocast)."""
    mu, logvar = mu.float(), logvar.float()
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).mean()


@torch.no_grad()
def mean_psnr(transform, images: torch.Tensor, device, batch_size: int = 256) -> float:
    """Mean PSNR (dB) between ``transform(x)`` and ``x`` over ``images``, in batches (NaN if empty)."""
    values = []
    for s in range(0, len(images), batch_size):
        x = images[s:s + batch_size].to(device)
        mse = (transform(x) - x).pow(2).flatten(1).mean(1).clamp_min(1e-10)
        values.append(-10 * mse.log10())
    return float(torch.cat(values).mean()) if values else float("nan")


def save(path, model: ConvVAE) -> None:
    """A self-describing checkpoint: the architecture settings and the weights."""
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        torch.save({"config": model.architecture, "image_size": model.layout.size, "state_dict": model.state_dict()},
                   tmp)


def load(path) -> ConvVAE:
    """A model written by :func:`save`, in eval mode; a clear error for anything else."""
    from ..io import load_checkpoint

    state = load_checkpoint(path, "autoencoder model")
    if not {"config", "image_size", "state_dict"} <= set(state):
        raise ValueError(f"autoencoder model: {path} was not written by the train_cae/train_aae stages "
                         f"(keys {sorted(state)[:5]})")
    model = build(state["config"], state["image_size"])
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"autoencoder model: {path}: weights do not match its recorded architecture "
                         f"({' '.join(str(exc).split())[:300]})") from exc
    return model.eval()


def build(architecture: dict, image_size: int) -> ConvVAE:
    """A ConvVAE from its ``layout``, ``patch``, ``widths``, ``kernel`` and ``stride``."""
    return ConvVAE(image_size, **architecture)
