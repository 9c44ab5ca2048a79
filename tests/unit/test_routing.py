"""Alias routing: which version a draw picks, at the weight's edges."""

from __future__ import annotations

from lamina.functions.routing import pick_version
from lamina.model.alias import Alias


def alias(weights: dict[str, float]) -> Alias:
    return Alias(
        region="us-east-1",
        function_name="f",
        name="a",
        function_version="1",
        revision_id="r",
        weights=weights,
    )


def test_no_weights_is_the_primary() -> None:
    assert pick_version(alias({}), 0.0) == "1"


def test_draw_below_weight_picks_the_extra_version() -> None:
    assert pick_version(alias({"2": 0.25}), 0.1) == "2"
    assert pick_version(alias({"2": 0.25}), 0.25) == "1"


def test_weight_edges_are_deterministic() -> None:
    assert all(pick_version(alias({"2": 0.0})) == "1" for _ in range(100))
    assert all(pick_version(alias({"2": 1.0})) == "2" for _ in range(100))
