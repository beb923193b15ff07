"""Whole-flow checks: unique step ids, nesting depth and step count, each at its path."""

from __future__ import annotations

from typing import Any

import pytest

from app.flows import parse_flow
from app.flows.structure import MAX_NESTING_DEPTH, MAX_STEPS
from tests.unit.flow_documents import flow, problems, step


def test_duplicate_ids_are_refused_across_nesting() -> None:
    data = flow(step("code", id="work"), step("branch", id="check"), step("respond", id="work"))
    data["steps"][1]["else"] = [step("respond", id="check")]
    assert problems(data) == [
        {
            "path": "steps[1].else[0].id",
            "message": "duplicate step id 'check' (also used at steps[1])",
        },
        {"path": "steps[2].id", "message": "duplicate step id 'work' (also used at steps[0])"},
    ]


def nested(levels: int) -> dict[str, Any]:
    """A flow whose innermost step sits `levels` deep (top level = 1)."""
    inner = step("respond", id="inner")
    for level in range(levels - 1):
        inner = {"id": f"loop_{level}", "type": "loop", "items": [1], "steps": [inner]}
    return flow(inner)


def test_nesting_is_allowed_up_to_the_limit() -> None:
    definition = parse_flow(nested(MAX_NESTING_DEPTH))
    assert len(list(definition.iter_steps())) == MAX_NESTING_DEPTH


@pytest.mark.parametrize("levels", [MAX_NESTING_DEPTH + 1, 2000])
def test_nesting_too_deep_is_refused_before_validation_recurses(levels: int) -> None:
    deepest = "steps[0]" + ".steps[0]" * MAX_NESTING_DEPTH
    assert problems(nested(levels)) == [
        {"path": deepest, "message": f"steps nest deeper than {MAX_NESTING_DEPTH} levels"}
    ]


def test_too_many_steps_are_refused() -> None:
    data = flow(*(step("respond", id=f"s{n}") for n in range(MAX_STEPS + 1)))
    assert problems(data) == [
        {"path": "steps", "message": f"the flow has {MAX_STEPS + 1} steps; the limit is 200"}
    ]


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        (flow(step("branch", id="b", condition="{{ a }} {{ b }}")), "steps[0].condition", "one"),
        (flow(step("respond", body={"a": ["{{ x"]})), "steps[0].body.a[0]", "end of template"),
        (
            flow(step("respond", body={"X Y": "{{ }}"})),
            'steps[0].body["X Y"]',
            "Expected an expression",
        ),
    ],
)
def test_a_template_that_does_not_compile_is_refused_at_its_path(
    data: Any, path: str, message: str
) -> None:
    found = problems(data)
    assert [p["path"] for p in found] == [path], found
    assert message in found[0]["message"]
