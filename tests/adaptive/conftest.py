"""The stored 16-pixel victim of the attack tests, attacked here through constructed defences."""

from attacks.conftest import victim_and_images  # noqa: F401  (a shared fixture)
