"""The image grid of Li, Angelov and Suri's Fig. 7: a few seeded test images (rows); columns the
clean image, each attack's image, and each defence's recovery of one attack's image, with the
answer of the classifier behind each column under every cell (green when it is the label)."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import defences as defence_registry
from .. import inference

@dataclass(frozen=True)
class Column:
    """One column of the grid: its title, its images (N, 3, H, W in [0, 1]) and the predictions on them."""

    title: str
    images: torch.Tensor
    predictions: np.ndarray


def rows(n_pool: int, n: int, seed: int) -> np.ndarray:
    """The seeded pool indices of the grid's rows, sorted."""
    return np.sort(np.random.default_rng([seed, 17]).choice(n_pool, size=min(n, n_pool), replace=False))


@torch.no_grad()
def columns(*, clean: torch.Tensor, attacked: dict[str, torch.Tensor], victim, defences: dict, attack: str,
            device, seed: int) -> list[Column]:
    """Clean, every attack, then every defence of ``defences`` (name -> built defence) recovering the
    ``attack`` images; each column answered by the classifier behind it (seeded, for random defences)."""
    def answer(model, x):
        return inference.predict(model, x, len(x), device)

    out = [Column("clean", clean, answer(victim, clean))]
    out += [Column(name, x, answer(victim, x)) for name, x in attacked.items()]
    for name, defence in defences.items():
        torch.manual_seed(seed)
        recovered = defence.recover(attacked[attack].to(device)).clamp(0, 1).cpu()
        out.append(Column(f"{attack} \u2192 {name}", recovered, answer(defence_registry.classifier(defence, victim),
                                                                        recovered)))
    return out


def figure(cols: list[Column], labels: np.ndarray, class_names: list[str]):
    """The grid (one matplotlib axes per cell) with a title over each column and the prediction under each cell."""
    n, k = len(labels), len(cols)
    fig, axes = plt.subplots(n, k, figsize=(0.75 * k + 0.5, 0.8 * n + 1.2), squeeze=False,
                             gridspec_kw={"hspace": 0.25, "wspace": 0.08})

    def name(index) -> str:
        return class_names[index] if 0 <= index < len(class_names) else str(int(index))

    for j, col in enumerate(cols):
        axes[0, j].set_title(col.title, rotation=55, ha="left", va="bottom", fontsize=7, loc="center")
        for i in range(n):
            ax = axes[i, j]
            ax.imshow(col.images[i].permute(1, 2, 0).numpy(), interpolation="nearest", vmin=0, vmax=1)
            ok = col.predictions[i] == labels[i]
            ax.set_xlabel(name(col.predictions[i]), fontsize=6, color="green" if ok else "red", labelpad=1)
            ax.set_xticks([]), ax.set_yticks([])
            ax.spines[:].set_visible(False)
    return fig
