"""The Pix2Pix purifier (Mezhoudi 2023) as a defence: the U-Net trained by stage ``train_purifier``
(``<models>/purifiers/<purifier>.pt``), applied to every input, dropout off (eval mode)."""

from __future__ import annotations

from ..purifiers import load_generator
from . import register
from .nrp import Purify


@register("pix2pix", differentiable=True, random=False)
def build(models_dir, purifier: str = "pix2pix"):
    """Pix2Pix purifier (Mezhoudi 2023; no distance bound): the generator of ``purifiers.<purifier>`` (``pix2pix``)."""
    return Purify(load_generator(models_dir / "purifiers" / f"{purifier}.pt"))
