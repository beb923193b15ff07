"""Which steps a retry from a step runs again (`app.flows.replays.steps_from`)."""

from __future__ import annotations

import pytest

from app.flows.replays import UnknownStep, steps_from


def respond(step_id: str) -> dict[str, str]:
    return {"id": step_id, "type": "respond", "body": "."}


FLOW = {
    "name": "nested",
    "steps": [
        respond("first"),
        {"id": "each", "type": "loop", "items": [1, 2], "steps": [respond("a"), respond("b")]},
        respond("last"),
    ],
}


def test_a_step_and_those_after_it_run_again() -> None:
    assert steps_from(FLOW, "first") == ["first", "each", "a", "b", "last"]
    assert steps_from(FLOW, "last") == ["last"]


def test_a_nested_step_takes_its_loop_along_but_not_the_steps_before_it() -> None:
    assert steps_from(FLOW, "b") == ["each", "b", "last"]


def test_an_unknown_step_is_refused() -> None:
    with pytest.raises(UnknownStep, match="nosuch"):
        steps_from(FLOW, "nosuch")
