"""The baseline row: no defence, the input unchanged."""

from __future__ import annotations

from . import Defence, register


class NoDefence(Defence):
    def recover(self, x):
        return x


@register("none", differentiable=True, random=False)
def build():
    """No defence (the baseline row): no arguments."""
    return NoDefence()
