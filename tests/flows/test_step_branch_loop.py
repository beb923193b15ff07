"""`branch` and `loop` steps: the path taken, per-iteration outputs and keys, failures."""

from __future__ import annotations

from typing import Any

from tests.flows.helpers import code, problem_at, rejected, started_run, step
from tests.flows.stack import Stack, running_stack
from tests.integration.helpers import eventually

ROUTER: dict[str, Any] = {
    "name": "router",
    "steps": [
        {
            "id": "route",
            "type": "branch",
            "condition": "trigger.body.n > 10",
            "then": [
                code(
                    "big",
                    "def run(input, ctx):\n    return {'size': 'big', 'n': input}",
                    input="{{ trigger.body.n }}",
                ),
            ],
            "else": [
                {"id": "small", "type": "respond", "status": 202, "body": "small"},
            ],
        },
        {
            "id": "fallthrough",
            "type": "branch",
            "condition": "{{ trigger.body.n < 0 }}",
            "then": [{"id": "negative", "type": "respond", "body": "negative"}],
        },
    ],
}


async def test_a_branch_runs_then_or_else_and_reports_which(stack: Stack) -> None:
    flow = await stack.deploy(ROUTER)

    big = await stack.wait_for_status(await started_run(stack, flow["id"], {"n": 20}))
    small = await stack.wait_for_status(await started_run(stack, flow["id"], {"n": 1}))

    assert big["status"] == "SUCCEEDED"
    assert [s["key"] for s in big["steps"]] == ["big", "route", "fallthrough"]
    assert step(big, "big")["output"] == {"size": "big", "n": 20}
    assert step(big, "route")["output"] == {"branch": "then", "output": {"size": "big", "n": 20}}
    assert step(big, "fallthrough")["output"] == {"branch": "else", "output": None}
    assert big["response"] is None

    assert small["status"] == "SUCCEEDED"
    assert [s["key"] for s in small["steps"]] == ["small", "route", "fallthrough"]
    assert step(small, "route")["output"]["branch"] == "else"
    assert small["response"] == {"status": 202, "headers": {}, "body": "small"}


async def test_a_condition_that_cannot_be_evaluated_fails_the_branch(stack: Stack) -> None:
    flow = await stack.deploy(ROUTER)

    run = await stack.wait_for_status(await started_run(stack, flow["id"], {"m": 1}))

    assert run["status"] == "FAILED"
    route = step(run, "route")
    assert route["status"] == "FAILED"
    assert "trigger.body.n > 10" in route["error"]
    assert "'n'" in route["error"]
    assert run["error"] == f"step 'route' failed: {route['error']}"
    assert [s["key"] for s in run["steps"]] == ["route"]


LOOPS: dict[str, Any] = {
    "name": "loops",
    "steps": [
        {
            "id": "each",
            "type": "loop",
            "items": "{{ trigger.body.numbers }}",
            "steps": [
                code(
                    "inner",
                    """
                    def run(input, ctx):
                        return {
                            'item': input['item'],
                            'index': input['index'],
                            'key': ctx['step_key'],
                        }
                    """,
                ),
            ],
        },
        {
            "id": "letters",
            "type": "loop",
            "items": ["a", "b"],
            "steps": [
                {"id": "name", "type": "respond", "body": "{{ item }}-{{ index }}"},
                code(
                    "upper",
                    "def run(input, ctx):\n    return input.upper()",
                    input="{{ steps.name.output.body }}",
                ),
            ],
        },
    ],
}


async def test_a_loop_runs_its_steps_per_item_and_collects_their_outputs(stack: Stack) -> None:
    flow = await stack.deploy(LOOPS)

    run = await stack.wait_for_status(
        await started_run(stack, flow["id"], {"numbers": [10, {"k": "v"}, None]})
    )

    assert run["status"] == "SUCCEEDED", run["error"]
    assert step(run, "each")["output"] == [
        {"item": 10, "index": 0, "key": "each[0].inner"},
        {"item": {"k": "v"}, "index": 1, "key": "each[1].inner"},
        {"item": None, "index": 2, "key": "each[2].inner"},
    ]
    assert step(run, "each[1].inner")["step_id"] == "inner"
    assert step(run, "letters")["output"] == ["A-0", "B-1"]
    assert step(run, "letters[1].name")["output"]["body"] == "b-1"
    assert [s["key"] for s in run["steps"]] == [
        "each[0].inner",
        "each[1].inner",
        "each[2].inner",
        "each",
        "letters[0].name",
        "letters[0].upper",
        "letters[1].name",
        "letters[1].upper",
        "letters",
    ]


async def test_a_loop_pauses_and_resumes_within_its_iterations(stack: Stack) -> None:
    flow = await stack.deploy(
        {
            "name": "approvals",
            "steps": [
                {
                    "id": "each",
                    "type": "loop",
                    "items": ["a", "b"],
                    "steps": [
                        code("ask", "def run(input, ctx):\n    return ctx['resume_urls']['gate']"),
                        {"id": "gate", "type": "wait_for_webhook"},
                        {
                            "id": "mark",
                            "type": "respond",
                            "body": "{{ item }}{{ steps.gate.output.mark }}",
                        },
                    ],
                }
            ],
        }
    )
    run_id = await started_run(stack, flow["id"])

    for index, mark in enumerate(("!", "?")):

        async def asked(index: int = index) -> bool:
            run = await stack.run(run_id)
            keys = {s["key"] for s in run["steps"]}
            return run["status"] == "PAUSED" and f"each[{index}].ask" in keys

        await eventually(asked)
        url = step(await stack.run(run_id), f"each[{index}].ask")["output"]
        assert f"/resume/{run_id}/" in url
        resumed = await stack.client.post(url, json={"mark": mark})
        assert resumed.json()["step"] == f"each[{index}].gate"
    run = await stack.wait_for_status(run_id)

    assert run["status"] == "SUCCEEDED", run["error"]
    assert [o["body"] for o in step(run, "each")["output"]] == ["a!", "b?"]
    assert step(run, "each[1].gate")["output"] == {"mark": "?"}


async def test_items_that_are_not_a_list_fail_the_loop(stack: Stack) -> None:
    flow = await stack.deploy(LOOPS)

    run = await stack.wait_for_status(await started_run(stack, flow["id"], {"numbers": 3}))

    assert run["status"] == "FAILED"
    each = step(run, "each")
    assert each["status"] == "FAILED"
    assert each["error"] == "items must be a list, got int"
    assert run["error"] == "step 'each' failed: items must be a list, got int"


async def test_bad_branches_and_loops_are_refused_at_deploy(database_url: str) -> None:
    respond = {"id": "r", "type": "respond"}

    def flow(*steps: dict[str, Any]) -> dict[str, Any]:
        return {"name": "bad", "steps": list(steps)}

    async with running_stack(database_url, with_worker=False) as stack:
        no_then = await rejected(stack, flow({"id": "b", "type": "branch", "condition": "true"}))
        assert "required" in problem_at(no_then, "steps[0].then").lower()
        two = {"id": "b", "type": "branch", "condition": "{{ a }} and {{ b }}", "then": []}
        assert "one expression" in problem_at(
            await rejected(stack, flow(two)), "steps[0].condition"
        )
        nested = {
            "id": "b",
            "type": "branch",
            "condition": "x",
            "then": [],
            "else": [{"id": "n", "type": "nope"}],
        }
        assert "unknown step type 'nope'" in problem_at(
            await rejected(stack, flow(nested)), "steps[0].else[0]"
        )

        empty = {"id": "l", "type": "loop", "items": [1], "steps": []}
        assert "at least 1" in problem_at(await rejected(stack, flow(empty)), "steps[0].steps")
        inner = {"id": "l", "type": "loop", "items": [1], "steps": [{"id": "c", "type": "code"}]}
        assert problem_at(await rejected(stack, flow(inner)), "steps[0].steps[0].code")
        twice = {"id": "l", "type": "loop", "items": [1], "steps": [respond]}
        duplicate = await rejected(stack, flow(respond, twice))
        assert "duplicate step id 'r'" in problem_at(duplicate, "steps[1].steps[0].id")


async def test_items_of_the_wrong_type_are_refused_at_the_items_path(database_url: str) -> None:
    loop = {"id": "l", "type": "loop", "items": 5, "steps": [{"id": "r", "type": "respond"}]}
    async with running_stack(database_url, with_worker=False) as stack:
        problems = await rejected(stack, {"name": "bad", "steps": [loop]})

    assert [p["path"] for p in problems] == ["steps[0].items"]


async def test_a_body_key_named_like_a_dict_method_is_the_keys_value(stack: Stack) -> None:
    flow = await stack.deploy(
        {
            "name": "itemised",
            "steps": [
                {
                    "id": "each",
                    "type": "loop",
                    "items": "{{ trigger.body.items }}",
                    "steps": [{"id": "r", "type": "respond", "body": "{{ item }}"}],
                }
            ],
        }
    )

    run = await stack.wait_for_status(await started_run(stack, flow["id"], {"items": [1, 2]}))

    assert run["status"] == "SUCCEEDED", run["error"]
    assert [o["body"] for o in step(run, "each")["output"]] == [1, 2]
