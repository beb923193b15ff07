"""`delay` and `wait_for_webhook` steps over HTTP: resume URLs, sync resumes, bad definitions.

How waits behave in time (delays, timeouts of waits, the paused-run TTL, early resumes) is
tested with injected time in tests/integration/test_flow_time.py.
"""

from __future__ import annotations

from typing import Any

from tests.flows.helpers import (
    code,
    problem_at,
    rejected,
    started_run,
    step,
)
from tests.flows.stack import Stack, running_stack

APPROVAL: dict[str, Any] = {
    "name": "approval",
    "steps": [
        {"id": "ask", "type": "respond", "body": {"approve": "{{ resume_urls.approval }}"}},
        {"id": "approval", "type": "wait_for_webhook"},
        code(
            "decide",
            "def run(input, ctx):\n    return 'yes' if input['ok'] else 'no'",
            input="{{ steps.approval.output }}",
        ),
    ],
}


async def test_a_resume_url_continues_the_run_with_the_body_as_output_once(stack: Stack) -> None:
    flow = await stack.deploy(APPROVAL)

    asked = await stack.trigger(flow["id"], sync=True)
    assert asked.status_code == 200, asked.text
    run_id = asked.headers["x-sluice-run-id"]
    url = asked.json()["approve"]
    assert url.startswith(f"{stack.base_url}/resume/{run_id}/")
    paused = await stack.wait_for_status(run_id, {"PAUSED"})
    assert step(paused, "approval")["status"] == "PAUSED"

    run_part, token = url.rsplit("/", 1)
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert (await stack.client.post(f"{run_part}/{tampered}", json={})).status_code == 404
    assert (await stack.client.post(f"{run_part}/not-a-token", json={})).status_code == 404
    other_run = url.replace(run_id, "00000000-0000-4000-8000-000000000000")
    assert (await stack.client.post(other_run, json={})).status_code == 404

    resumed = await stack.client.post(url, json={"ok": True, "by": "ann"})
    again = await stack.client.post(url, json={"ok": False})

    assert resumed.status_code == 202, resumed.text
    assert resumed.json() == {"run_id": run_id, "step": "approval", "status": "resumed"}
    assert again.status_code == 409
    assert "resumed already" in again.json()["error"]
    run = await stack.wait_for_status(run_id)
    assert run["status"] == "SUCCEEDED", run["error"]
    assert step(run, "approval")["output"] == {"ok": True, "by": "ann"}
    assert step(run, "decide")["output"] == "yes"
    late = await stack.client.post(url, json={"ok": False})
    assert late.status_code == 409
    assert "has ended" in late.json()["error"]


CALLBACK: dict[str, Any] = {
    "name": "callback",
    "steps": [
        code("register", "def run(input, ctx):\n    return ctx['resume_urls']['callback']"),
        {"id": "callback", "type": "wait_for_webhook"},
        {
            "id": "answer",
            "type": "respond",
            "status": 201,
            "body": {"got": "{{ steps.callback.output }}"},
        },
    ],
}


async def test_a_sync_resume_answers_with_the_runs_next_reply(stack: Stack) -> None:
    flow = await stack.deploy(CALLBACK)
    run_id = await started_run(stack, flow["id"])
    paused = await stack.wait_for_status(run_id, {"PAUSED"})
    url = step(paused, "register")["output"]

    reply = await stack.client.post(url + "/sync", content=b"plain words")

    assert reply.status_code == 201, reply.text
    assert reply.json() == {"got": "plain words"}
    assert reply.headers["x-sluice-run-id"] == run_id
    run = await stack.wait_for_status(run_id)
    assert run["status"] == "SUCCEEDED"
    assert step(run, "callback")["output"] == "plain words"


async def test_bad_delays_and_waits_are_refused_at_deploy(database_url: str) -> None:
    def flow(**fields: Any) -> dict[str, Any]:
        return {"name": "bad", "steps": [{"id": "s", **fields}]}

    async with running_stack(database_url, with_worker=False) as stack:
        both = await rejected(stack, flow(type="delay", seconds=1, until="2030-01-01T00:00:00Z"))
        assert "exactly one of 'seconds' or 'until'" in problem_at(both, "steps[0]")
        neither = await rejected(stack, flow(type="delay"))
        assert "exactly one" in problem_at(neither, "steps[0]")
        naive = await rejected(stack, flow(type="delay", until="2030-01-01T00:00:00"))
        assert "time zone" in problem_at(naive, "steps[0].until")
        garbage = await rejected(stack, flow(type="delay", until="next tuesday"))
        assert "ISO 8601" in problem_at(garbage, "steps[0].until")
        negative = await rejected(stack, flow(type="delay", seconds=-1))
        assert "greater than or equal to 0" in problem_at(negative, "steps[0].seconds")

        zero = await rejected(stack, flow(type="wait_for_webhook", timeout_seconds=0))
        assert "greater than 0" in problem_at(zero, "steps[0].timeout_seconds")
        extra = await rejected(stack, flow(type="wait_for_webhook", url="https://x/"))
        assert "not permitted" in problem_at(extra, "steps[0].url")
