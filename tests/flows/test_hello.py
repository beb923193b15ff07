"""The issue's minimal example, as written, through a real app and worker."""

from __future__ import annotations

from typing import Any

from tests.flows.stack import Stack

HELLO: dict[str, Any] = {
    "name": "hello",
    "steps": [
        {
            "id": "compute",
            "type": "code",
            "code": "def run(input, ctx):\n"
            "    return {'hello': input['trigger']['body'].get('who', 'world')}",
        },
        {"id": "reply", "type": "respond", "status": 200, "body": "{{ steps.compute.output }}"},
    ],
}


async def test_the_minimal_example_replies_with_a_json_object(stack: Stack) -> None:
    flow = await stack.deploy(HELLO)

    reply = await stack.trigger(flow["id"], {"who": "sluice"}, sync=True)

    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"hello": "sluice"}
    run = await stack.run(reply.headers["x-sluice-run-id"])
    assert run["status"] == "SUCCEEDED"
    assert run["version"] == 1
    assert [(s["key"], s["status"]) for s in run["steps"]] == [
        ("compute", "SUCCEEDED"),
        ("reply", "SUCCEEDED"),
    ]


async def test_an_async_webhook_answers_202_and_the_run_finishes(stack: Stack) -> None:
    flow = await stack.deploy(HELLO)

    accepted = await stack.trigger(flow["id"], {})

    assert accepted.status_code == 202
    run = await stack.wait_for_status(accepted.json()["run_id"])
    assert run["status"] == "SUCCEEDED"
    assert run["response"]["body"] == {"hello": "world"}
