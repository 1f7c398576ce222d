"""The report's plots, drawn with matplotlib's Agg backend (no display needed) as PNG bytes.

Each function takes the tables the stages wrote and returns a figure; :func:`png` renders it
without a timestamp or version in its metadata, so the same tables give the same bytes.
"""

from __future__ import annotations

import io
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

DPI = 100
VICTIM_ALONE = "none"


def png(fig) -> bytes:
    """The figure as PNG bytes (no Software or date chunk: identical tables give identical files)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _budget_unit(norm: str) -> tuple[float, str]:
    return (255.0, "eps (x/255, Linf)") if norm == "Linf" else (1.0, "eps (L2)")


def robust_accuracy(adaptive: pd.DataFrame, labels: list[str]):
    """Robust accuracy against the budget (Carlini et al. 2019's first plot): per defence, PGD
    through its strongest gradient route at each eps of the sanity checks' sweep, and the clean
    accuracy at eps 0; the victim alone dashed. ``labels``: one legend entry per row."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colours = plt.get_cmap("tab20").colors  # 20 distinct colours: one per defence of a full table
    checked = adaptive["check_eps_sweep_eps"].fillna("").astype(str).str.startswith("[")
    scale, unit = _budget_unit(str(adaptive.loc[checked, "norm"].iloc[0]) if checked.any() else "Linf")
    for (index, row), label in zip(adaptive.iterrows(), labels):
        if not checked[index]:
            continue
        eps = [0.0, *json.loads(row["check_eps_sweep_eps"])]
        accuracy = [row["clean"], *json.loads(row["check_eps_sweep"])]
        alone = row["defence"] == VICTIM_ALONE
        ax.plot(np.array(eps) * scale, np.array(accuracy) * 100, marker="o", label=label,
                color="black" if alone else colours[index % len(colours)], linestyle="--" if alone else "-",
                linewidth=2.5 if alone else 1.5)
    if checked.any():
        ax.axvline(float(adaptive.loc[checked, "eps"].iloc[0]) * scale, color="grey", linewidth=0.8, linestyle=":")
    ax.set(xlabel=unit, ylabel="robust accuracy (%)", ylim=(-2, 102),
           title="Robust accuracy against the budget (PGD through each defence; dotted: the threat's eps)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    return fig


def training(histories: dict[str, dict[str, pd.DataFrame]]):
    """One panel per trainer (victim, CAE, AAE, purifiers, self-supervised heads, diffusion model): the loss of
    every run per epoch, from the trainers' history CSVs."""
    fig, axes = plt.subplots(1, len(histories), figsize=(3.6 * len(histories), 3.2), squeeze=False)
    for ax, (trainer, runs) in zip(axes[0], histories.items()):
        for name, frame in runs.items():
            ax.plot(frame["epoch"], frame["loss"], marker=".", label=name)
        losses = pd.concat([frame["loss"] for frame in runs.values()])
        if (losses > 0).all() and losses.max() > 20 * losses.min():  # log only where it spans decades
            ax.set_yscale("log")
        ax.set(title=trainer, xlabel="epoch", ylabel="loss")
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def ablation_lambda(table: pd.DataFrame, value: str):
    """Li, Angelov and Suri's Fig. 4: average accuracy over the lambda1 x lambda2 grid (a heatmap)."""
    l1, l2 = (next(c for c in table.columns if c.endswith(k)) for k in ("lambda1", "lambda2"))
    grid = table.pivot_table(index=l1, columns=l2, values=value) * 100
    fig, ax = plt.subplots(figsize=(5, 4))
    image = ax.imshow(grid.values, cmap="viridis", origin="lower")
    for (i, j), v in np.ndenumerate(grid.values):
        ax.text(j, i, f"{v:.1f}", ha="center", va="center", color="white", fontsize=8)
    ax.set(xticks=range(len(grid.columns)), xticklabels=[f"{v:g}" for v in grid.columns], xlabel="lambda2 (AAE KL)",
           yticks=range(len(grid.index)), yticklabels=[f"{v:g}" for v in grid.index], ylabel="lambda1 (CAE KL)",
           title=f"{value} (%)")
    fig.colorbar(image, ax=ax)
    return fig


def ablation_depth(table: pd.DataFrame, value: str):
    """Li, Angelov and Suri's Fig. 5: average accuracy against the AAE's depth, one curve per CAE depth."""
    cae, aae = (next(c for c in table.columns if c.endswith(f"{k}.default.widths")) for k in ("cae", "aae"))
    depth = table.assign(cae_depth=table[cae].map(lambda w: len(json.loads(str(w)))),
                         aae_depth=table[aae].map(lambda w: len(json.loads(str(w)))))
    fig, ax = plt.subplots(figsize=(5, 4))
    for d, rows in depth.sort_values("aae_depth").groupby("cae_depth"):
        ax.plot(rows["aae_depth"], rows[value] * 100, marker="o", label=f"CAE {d} layers")
    ax.set(xlabel="AAE encoder layers", ylabel=f"{value} (%)", title="Depth ablation")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig
