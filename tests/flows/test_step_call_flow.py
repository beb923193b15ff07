"""`call_flow` steps: a child run's reply or output as the step's output, fire-and-forget,
failing and missing children, and the parent/child links in the runs API."""

from __future__ import annotations

from typing import Any

from tests.flows.helpers import code, problem_at, rejected, started_run, step
from tests.flows.stack import Stack, running_stack

CHILDREN: list[dict[str, Any]] = [
    {
        "name": "double",
        "steps": [
            code("compute", "def run(input, ctx):\n    return input['trigger']['body']['n'] * 2"),
            {
                "id": "reply",
                "type": "respond",
                "status": 201,
                "body": {"child_says": "{{ steps.compute.output }}"},
            },
        ],
    },
    {
        "name": "quiet",
        "steps": [
            code(
                "compute",
                "def run(input, ctx):\n    return {'final': input + 1}",
                input="{{ trigger.body }}",
            )
        ],
    },
    {
        "name": "broken",
        "steps": [code("explode", "def run(input, ctx):\n    raise RuntimeError('child broke')")],
    },
    {"name": "waiting", "steps": [{"id": "forever", "type": "wait_for_webhook"}]},
]


async def deploy_children(stack: Stack) -> None:
    for child in CHILDREN:
        await stack.deploy(child)


async def test_a_childs_reply_or_final_output_becomes_the_steps_output(stack: Stack) -> None:
    await deploy_children(stack)
    parent = await stack.deploy(
        {
            "name": "parent",
            "steps": [
                {
                    "id": "by_reply",
                    "type": "call_flow",
                    "flow": "double",
                    "input": {"n": "{{ trigger.body.n }}"},
                },
                {
                    "id": "by_output",
                    "type": "call_flow",
                    "flow": "quiet",
                    "input": "{{ trigger.body.n }}",
                },
                {
                    "id": "reply",
                    "type": "respond",
                    "body": {
                        "a": "{{ steps.by_reply.output }}",
                        "b": "{{ steps.by_output.output }}",
                    },
                },
            ],
        }
    )

    reply = await stack.trigger(parent["id"], {"n": 5}, sync=True)

    assert reply.status_code == 200, reply.text
    assert reply.json() == {"a": {"child_says": 10}, "b": {"final": 6}}
    parent_id = reply.headers["x-sluice-run-id"]
    run = await stack.run(parent_id)
    assert run["status"] == "SUCCEEDED"
    assert step(run, "by_reply")["status"] == "SUCCEEDED"
    assert step(run, "by_reply")["output"] == {"child_says": 10}
    assert [(c["flow"], c["status"], c["parent_run_id"]) for c in run["children"]] == [
        ("double", "SUCCEEDED", parent_id),
        ("quiet", "SUCCEEDED", parent_id),
    ]
    child = await stack.run(run["children"][0]["id"])
    assert child["parent_run_id"] == parent_id
    assert child["trigger"]["body"] == {"n": 5}
    assert child["response"]["status"] == 201
    assert run["parent_run_id"] is None


async def test_without_wait_the_step_returns_the_child_run_id_at_once(stack: Stack) -> None:
    await deploy_children(stack)
    parent = await stack.deploy(
        {
            "name": "fire",
            "steps": [{"id": "spawn", "type": "call_flow", "flow": "waiting", "wait": False}],
        }
    )

    run = await stack.wait_for_status(await started_run(stack, parent["id"]))

    assert run["status"] == "SUCCEEDED"
    child_id = step(run, "spawn")["output"]["run_id"]
    assert run["output"] == {"run_id": child_id}
    child = await stack.wait_for_status(child_id, {"PAUSED"})
    assert child["parent_run_id"] == run["id"]
    assert [c["id"] for c in (await stack.run(run["id"]))["children"]] == [child_id]


async def test_a_failing_child_fails_the_parents_step_with_its_status_and_error(
    stack: Stack,
) -> None:
    await deploy_children(stack)
    parent = await stack.deploy(
        {
            "name": "careful",
            "steps": [
                {"id": "call", "type": "call_flow", "flow": "broken"},
                {"id": "after", "type": "respond", "body": "never"},
            ],
        }
    )

    run = await stack.wait_for_status(await started_run(stack, parent["id"]))

    assert run["status"] == "FAILED"
    [child] = run["children"]
    assert child["status"] == "FAILED"
    call = step(run, "call")
    assert call["status"] == "FAILED"
    assert call["error"].startswith(
        f"child run {child['id']} of flow 'broken' ended FAILED: step 'explode' failed:"
    )
    assert "RuntimeError: child broke" in call["error"]
    assert call["output"]["status"] == "FAILED"
    assert run["error"] == f"step 'call' failed: {call['error']}"
    assert [s["key"] for s in run["steps"]] == ["call"]


async def test_an_unknown_flow_fails_the_step_clearly(stack: Stack) -> None:
    parent = await stack.deploy(
        {"name": "lost", "steps": [{"id": "call", "type": "call_flow", "flow": "nowhere"}]}
    )

    run = await stack.wait_for_status(await started_run(stack, parent["id"]))

    assert run["status"] == "FAILED"
    assert step(run, "call")["error"] == "no enabled flow named 'nowhere' in this project"
    assert run["children"] == []


async def test_canceling_a_parent_cancels_the_child_it_waits_on(stack: Stack) -> None:
    await deploy_children(stack)
    parent = await stack.deploy(
        {"name": "patient", "steps": [{"id": "call", "type": "call_flow", "flow": "waiting"}]}
    )
    parent_id = await started_run(stack, parent["id"])
    waiting = await stack.wait_for_status(parent_id, {"PAUSED"})
    [child] = waiting["children"]
    await stack.wait_for_status(child["id"], {"PAUSED"})

    canceled = await stack.client.post(f"/api/v1/runs/{parent_id}/cancel")

    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "CANCELED"
    assert (await stack.wait_for_status(child["id"]))["status"] == "CANCELED"


async def test_bad_call_flow_steps_are_refused_at_deploy(database_url: str) -> None:
    def flow(**fields: Any) -> dict[str, Any]:
        return {"name": "bad", "steps": [{"id": "c", "type": "call_flow", **fields}]}

    async with running_stack(database_url, with_worker=False) as stack:
        assert "required" in problem_at(await rejected(stack, flow()), "steps[0].flow").lower()
        name = await rejected(stack, flow(flow="Not A Name"))
        assert "lowercase" in problem_at(name, "steps[0].flow")
        wait = await rejected(stack, flow(flow="child", wait="yes"))
        assert "boolean" in problem_at(wait, "steps[0].wait")
        template = await rejected(stack, flow(flow="child", input={"n": "{% if %}"}))
        assert problem_at(template, "steps[0].input.n")
