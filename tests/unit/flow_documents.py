"""Flow documents for the definition tests: one valid step of each type, and shorthands."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from app.flows import FlowDefinitionError, parse_flow

VALID_STEPS: dict[str, dict[str, Any]] = {
    "code": {
        "type": "code",
        "code": "def run(input, ctx):\n    return input",
        "input": {"n": "{{ trigger.body.n }}"},
        "requirements": ["requests==2.32.3", "pydantic[email]>=2,<3"],
        "timeout_seconds": 10,
    },
    "http": {
        "type": "http",
        "method": "POST",
        "url": "https://example.com/hooks/{{ trigger.body.id }}",
        "headers": {"Authorization": "Bearer {{ trigger.headers.token }}"},
        "body": {"items": "{{ steps.compute.output }}"},
        "timeout_seconds": 5.5,
    },
    "branch": {
        "type": "branch",
        "condition": "{{ trigger.body.amount > 100 }}",
        "then": [{"id": "big", "type": "respond", "status": 202}],
        "else": [{"id": "small", "type": "delay", "seconds": 1}],
    },
    "loop": {
        "type": "loop",
        "items": "{{ trigger.body.rows }}",
        "steps": [{"id": "each", "type": "code", "code": "def run(input, ctx):\n    return 1"}],
    },
    "delay": {"type": "delay", "until": "2030-01-01T09:00:00+02:00"},
    "wait_for_webhook": {"type": "wait_for_webhook", "timeout_seconds": 86400},
    "call_flow": {"type": "call_flow", "flow": "child-flow", "input": {"x": 1}, "wait": False},
    "respond": {
        "type": "respond",
        "status": 201,
        "headers": {"Location": "/things/{{ steps.compute.output.id }}"},
        "body": None,
    },
}


def flow(*steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "test-flow", "steps": list(steps), **fields}


def step(kind: str, id: str = "s", **fields: Any) -> dict[str, Any]:
    return {"id": id, **copy.deepcopy(VALID_STEPS[kind]), **fields}


def problems(data: Any) -> list[dict[str, str]]:
    with pytest.raises(FlowDefinitionError) as caught:
        parse_flow(data)
    return caught.value.problems
