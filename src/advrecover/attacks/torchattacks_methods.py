"""The methods torchattacks implements, wrapped with the parameter names of 001 Table I."""

from __future__ import annotations

import torchattacks

from . import register


@register("fgsm")
def fgsm(model, eps: float):
    return torchattacks.FGSM(model, eps=eps)


@register("pgd")
def pgd(model, eps: float, alpha: float, steps: int, random_start: bool = True):
    return torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=random_start)


@register("bim")
def bim(model, eps: float, alpha: float, steps: int):
    return torchattacks.BIM(model, eps=eps, alpha=alpha, steps=steps)


@register("cw")
def cw(model, c: float, kappa: float, steps: int, lr: float):
    return torchattacks.CW(model, c=c, kappa=kappa, steps=steps, lr=lr)
