"""Which version an invoke of an alias runs: the primary, or the extra version with its weight."""

from __future__ import annotations

import random

from lamina.model.alias import Alias


def pick_version(alias: Alias, draw: float | None = None) -> str:
    """``draw`` in [0, 1) (random when omitted); weight 0 never and weight 1 always picks the extra."""
    if not alias.weights:
        return alias.function_version
    x = random.random() if draw is None else draw
    for version, weight in alias.weights.items():
        if x < weight:
            return version
        x -= weight
    return alias.function_version
