"""The adversarial-training reference row: no recovery step, the victim replaced by the classifier
that stage ``victim_robust`` trained on its own adversarial examples (Wong, Rice and Kolter 2020's
fast FGSM in the quick profile, Madry et al. 2018's PGD in the paper preset). Transfer columns
hold the attacks made against the standard victim; the adaptive attacks target this classifier."""

from __future__ import annotations

from ..models import victim as victims
from . import Defence, register


class AdversariallyTrained(Defence):
    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def recover(self, x):
        return x


@register("adversarial_training", differentiable=True, random=False)
def build(models_dir, model: str = "victim_robust.pt"):
    """Adversarially trained victim (Madry et al. 2018; Wong, Rice and Kolter 2020), its own Linf budget
    from ``robust_victim``: the classifier in ``<models>/<model>`` (``victim_robust.pt``), no recovery."""
    return AdversariallyTrained(victims.load_classifier(models_dir / model))
