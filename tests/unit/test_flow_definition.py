"""Flow definitions: what parses, and the path and message of what does not."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from app.flows import FlowDefinitionError, content_hash, flow_json_schema, parse_flow, render
from app.flows.definition import STEP_TYPES, BranchStep, CodeStep, LoopStep, RespondStep
from tests.unit.flow_documents import flow, problems, step

# Issue 4's minimal example, exactly as written there.
HELLO = json.loads("""
{"name": "hello",
 "steps": [
   {"id": "compute", "type": "code",
    "code": "def run(input, ctx):\\n    return {'hello': input['trigger']['body'].get('who', 'world')}"},
   {"id": "reply", "type": "respond", "status": 200, "body": "{{ steps.compute.output }}"}]}
""")  # noqa: E501  (copied verbatim from the issue)


def test_issue_example_parses_and_replies_with_an_object() -> None:
    definition = parse_flow(HELLO)
    assert definition.name == "hello"
    compute, reply = definition.steps
    assert isinstance(compute, CodeStep)
    assert compute.code.startswith("def run(input, ctx):\n")
    assert isinstance(reply, RespondStep)
    assert reply.status == 200
    context = {
        "trigger": {"body": {"who": "ada"}},
        "steps": {"compute": {"output": {"hello": "ada"}}},
    }
    assert render(reply.body, context) == {"hello": "ada"}


@pytest.mark.parametrize("kind", STEP_TYPES)
def test_every_step_type_parses(kind: str) -> None:
    definition = parse_flow(flow(step(kind), description="one of each", trigger={"secret": "k"}))
    (parsed,) = definition.steps
    assert parsed.type == kind
    assert parsed.id == "s"


def test_defaults_and_common_fields() -> None:
    definition = parse_flow(
        flow(
            {"id": "reply", "type": "respond"},
            step("code", id="work", retry={"max_attempts": 4}, continue_on_error=True),
        )
    )
    reply, work = definition.steps
    assert isinstance(reply, RespondStep)
    assert (reply.status, reply.headers, reply.body) == (200, {}, None)
    assert work.retry is not None
    assert (work.retry.max_attempts, work.retry.backoff_seconds) == (4, 1.0)
    assert work.continue_on_error
    assert definition.webhook is not None
    assert definition.webhook.secret is None
    assert definition.webhook.scheme == "none"


def test_branch_else_and_nested_steps_are_walked_in_order() -> None:
    definition = parse_flow(flow(step("branch", id="choose"), step("loop", id="rows")))
    choose = definition.steps[0]
    assert isinstance(choose, BranchStep)
    assert [s.id for s in choose.else_] == ["small"]
    assert [(path, s.id) for path, s in definition.iter_steps()] == [
        ("steps[0]", "choose"),
        ("steps[0].then[0]", "big"),
        ("steps[0].else[0]", "small"),
        ("steps[1]", "rows"),
        ("steps[1].steps[0]", "each"),
    ]
    assert isinstance(definition.steps[1], LoopStep)


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        (flow(step("respond", extra=1)), "steps[0].extra", "Extra inputs are not permitted"),
        (flow(step("code"), unknown=True), "unknown", "Extra inputs are not permitted"),
        (flow(step("respond", status="200")), "steps[0].status", "valid integer"),
        (flow(step("respond", status=600)), "steps[0].status", "less than or equal to 599"),
        (flow(step("respond", status=99)), "steps[0].status", "greater than or equal to 200"),
        (flow(step("call_flow", wait="yes")), "steps[0].wait", "valid boolean"),
        (flow(step("http", method="get")), "steps[0].method", "'GET'"),
        (flow(step("http", url="ftp://x")), "steps[0].url", "http:// or https://"),
        (flow(step("http", headers={"A": 1})), "steps[0].headers.A", "valid string"),
        (flow(step("code", requirements=["-e ."])), "steps[0].requirements[0]", "no options"),
        (flow(step("code", code="x" * 70_000)), "steps[0].code", "at most 65536 characters"),
        (flow({"type": "code", "code": "x"}), "steps[0].id", "Field required"),
        (flow({"id": "s", "type": "http"}), "steps[0].url", "Field required"),
        (flow({"id": "s"}), "steps[0]", "a step needs a 'type'"),
        (flow({"id": "s", "type": "email"}), "steps[0]", "unknown step type 'email'"),
        (flow(step("respond", id="Reply")), "steps[0].id", "lowercase letters, digits and '_'"),
        (flow(step("respond", id="1st")), "steps[0].id", "not starting with a digit"),
        (flow(step("respond", id="a-b")), "steps[0].id", "steps.<id>"),
        (flow(step("respond"), name="Hello World"), "name", "lowercase letters"),
        (flow(step("call_flow", flow="../x")), "steps[0].flow", "lowercase letters"),
        (flow(step("delay", seconds=5)), "steps[0]", "exactly one of 'seconds' or 'until'"),
        (flow(step("delay", until=None)), "steps[0]", "exactly one of 'seconds' or 'until'"),
        (flow(step("delay", until="2030-01-01")), "steps[0].until", "time zone"),
        (flow(step("delay", until="soon")), "steps[0].until", "ISO 8601"),
        (flow(step("delay", until=None, seconds=-1)), "steps[0].seconds", "greater than"),
        (flow(step("code", retry={"max_attempts": 0})), "steps[0].retry.max_attempts", "greater"),
        (
            flow(step("code", retry={"backoff_seconds": -1})),
            "steps[0].retry.backoff_seconds",
            "greater than or equal to 0",
        ),
        (flow(step("branch", condition="x > 1", then=None)), "steps[0].then", "valid list"),
        (
            flow(step("respond", headers={"bad name": "v"})),
            'steps[0].headers["bad name"]',
            "header",
        ),
        (flow(), "steps", "at least 1 item"),
        ({"steps": [step("code")]}, "name", "Field required"),
        (["not", "a", "flow"], "", "valid dictionary"),
    ],
)
def test_bad_definitions_are_rejected_with_their_path(data: Any, path: str, message: str) -> None:
    found = problems(data)
    assert [p["path"] for p in found] == [path], found
    assert message in found[0]["message"]


def test_every_problem_is_listed_in_the_message() -> None:
    data = flow(step("respond", status=700), {"id": "s2", "type": "nope"}, name="Bad")
    with pytest.raises(FlowDefinitionError) as caught:
        parse_flow(data)
    assert [p["path"] for p in caught.value.problems] == ["name", "steps[0].status", "steps[1]"]
    message = str(caught.value)
    assert message.startswith("invalid flow definition: name: ")
    assert "; steps[0].status: Input should be less than or equal to 599; steps[1]: " in message


def test_content_hash_ignores_spelling_and_sees_meaning() -> None:
    first = parse_flow(HELLO)
    reordered = json.loads(json.dumps(HELLO, sort_keys=True))
    reordered["steps"][1].pop("status")  # the default, spelled out or not
    assert content_hash(parse_flow(reordered)) == content_hash(first)
    changed = copy.deepcopy(HELLO)
    changed["steps"][1]["status"] = 201
    assert content_hash(parse_flow(changed)) != content_hash(first)
    assert len(content_hash(first)) == 64


def test_else_survives_a_round_trip_through_json() -> None:
    definition = parse_flow(flow(step("branch")))
    dumped = definition.model_dump(mode="json", by_alias=True)
    assert dumped["steps"][0]["else"] == [
        {
            "id": "small",
            "type": "delay",
            "seconds": 1.0,
            "until": None,
            "retry": None,
            "continue_on_error": False,
        }
    ]
    assert parse_flow(dumped) == definition


def test_json_schema_is_published_with_every_step_type() -> None:
    schema = flow_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "Sluice flow definition"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "steps"}
    text = json.dumps(schema)
    for kind in STEP_TYPES:
        assert f'"const": "{kind}"' in text, kind
    branch = schema["$defs"]["BranchStep"]["properties"]
    assert "else" in branch
    assert "else_" not in branch
    delay_ids = schema["$defs"]["DelayStep"]["properties"]["id"]
    assert delay_ids["pattern"] == "^[a-z_][a-z0-9_]*$"


def test_json_schema_accepts_the_examples() -> None:
    jsonschema: Any = pytest.importorskip("jsonschema")  # not a dependency; used when present
    validator = jsonschema.Draft202012Validator(flow_json_schema())
    validator.validate(HELLO)
    for kind in STEP_TYPES:
        validator.validate(flow(step(kind)))
    assert not validator.is_valid(flow(step("respond", status=600)))


def test_network_is_off_unless_the_flow_or_the_step_asks() -> None:
    code = {"id": "c", "type": "code", "code": "def run(i, c): pass"}
    plain = parse_flow({"name": "f", "steps": [code]})
    assert plain.network is False
    assert plain.steps[0].network is None  # type: ignore[union-attr]
    asked = parse_flow({"name": "f", "network": True, "steps": [{**code, "network": False}]})
    assert asked.network is True
    assert asked.steps[0].network is False  # type: ignore[union-attr]
    with pytest.raises(FlowDefinitionError, match="network"):
        parse_flow({"name": "f", "steps": [{**code, "network": "yes"}]})
    with pytest.raises(FlowDefinitionError, match="network"):
        parse_flow(
            {
                "name": "f",
                "steps": [{"id": "h", "type": "http", "url": "http://x", "network": True}],
            }
        )
