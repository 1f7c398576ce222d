"""The recovery model of Li, Angelov and Suri (Sec. III-D): recovered = D_CAE(E_AAE(x)) (the latent mean), for every
input, clean or attacked. Models: ``<models>/cae/<variant>.pt`` and
``<models>/aae/<variant>/<train set>.pt`` (stages train_cae, train_aae)."""

from __future__ import annotations

from ..models import autoencoder as ae
from . import Defence, register


class Recovery(Defence):
    def __init__(self, cae: ae.ConvVAE, aae: ae.ConvVAE):
        super().__init__()
        self.cae, self.aae = cae, aae

    def recover(self, x):
        return self.cae.decode(self.aae.encode(x)[0])


@register("cae_aae", trained_on_attack=True, differentiable=True, random=False)
def build(models_dir, train_set, variant: str = "default"):
    """Li, Angelov and Suri's recovery (no norm bound): ``variant`` (``default``) names the
    recovery variant whose CAE and AAE (trained on ``train_set``) are loaded."""
    if train_set is None:
        raise ValueError("cae_aae: needs the attack set its AAE was trained on")
    return Recovery(ae.load(models_dir / "cae" / f"{variant}.pt"),
                    ae.load(models_dir / "aae" / variant / f"{train_set}.pt"))
