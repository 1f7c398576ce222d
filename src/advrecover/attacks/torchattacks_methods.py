"""The methods torchattacks implements, wrapped with the parameter names of Li, Angelov and Suri's
Table I."""

from __future__ import annotations

import torchattacks

from . import register


@register("fgsm", passes=lambda features, classes, **entry: 1)
def fgsm(model, eps: float):
    """FGSM, Linf (Goodfellow, Shlens and Szegedy 2015): one signed gradient step of size ``eps``."""
    return torchattacks.FGSM(model, eps=eps)


@register("ffgsm", passes=lambda features, classes, **entry: 1)
def ffgsm(model, eps: float, alpha: float):
    """Fast FGSM, Linf (Wong, Rice and Kolter 2020): one signed step of ``alpha`` from a uniform random
    start in the ``eps`` ball, projected back (their adversarial training uses alpha = 1.25 eps)."""
    return torchattacks.FFGSM(model, eps=eps, alpha=alpha)


@register("pgd", passes=lambda features, classes, steps, **entry: steps)
def pgd(model, eps: float, alpha: float, steps: int, random_start: bool = True):
    """PGD, Linf (Madry et al. 2018): ``steps`` signed steps of ``alpha`` projected into the ``eps``
    ball, from a uniform random start (``random_start``, True)."""
    return torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=random_start)


@register("bim", passes=lambda features, classes, steps, **entry: steps)
def bim(model, eps: float, alpha: float, steps: int):
    """BIM, Linf (Kurakin, Goodfellow and Bengio 2017): PGD without the random start."""
    return torchattacks.BIM(model, eps=eps, alpha=alpha, steps=steps)


@register("cw", passes=lambda features, classes, steps, **entry: steps)
def cw(model, c: float, kappa: float, steps: int, lr: float):
    """C&W, L2 (Carlini and Wagner 2017): Adam (``lr``) on the tanh variable for ``steps``, loss
    ||delta||^2 + ``c`` x the margin loss with confidence ``kappa``."""
    return torchattacks.CW(model, c=c, kappa=kappa, steps=steps, lr=lr)
