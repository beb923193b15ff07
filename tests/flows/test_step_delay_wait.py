"""`delay` and `wait_for_webhook` steps: pausing, resuming by URL, timeouts, the TTL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from tests.flows.helpers import (
    code,
    jobs_claimed,
    problem_at,
    rejected,
    started_run,
    step,
)
from tests.flows.stack import Stack, running_stack

DELAYS: dict[str, Any] = {
    "name": "delays",
    "steps": [
        {"id": "short", "type": "delay", "seconds": 0.5},
        {"id": "until", "type": "delay", "until": "{{ trigger.body.at }}"},
        {"id": "after", "type": "respond", "body": "done"},
    ],
}


async def test_a_delay_pauses_the_run_for_seconds_or_until_a_time(stack: Stack) -> None:
    flow = await stack.deploy(DELAYS)
    at = datetime.now(timezone(timedelta(hours=2))) + timedelta(seconds=0.8)

    run_id = await started_run(stack, flow["id"], {"at": at.isoformat()})
    paused = await stack.wait_for_status(run_id, {"PAUSED"})
    run = await stack.wait_for_status(run_id)

    assert paused["steps"][-1]["status"] == "PAUSED"
    assert paused["steps"][-1]["key"] in ("short", "until")
    assert run["status"] == "SUCCEEDED", run["error"]
    assert run["response"]["body"] == "done"
    short = step(run, "short")
    assert short["status"] == "SUCCEEDED"
    resumed = datetime.fromisoformat(short["output"]["resumed_at"])
    assert resumed - datetime.fromisoformat(short["started_at"]) >= timedelta(seconds=0.5)
    until = step(run, "until")
    # The time is kept as a delay from the engine's clock: it may come late, never early.
    waited_until = datetime.fromisoformat(until["output"]["waited_until"])
    assert at <= waited_until < at + timedelta(seconds=1)
    assert datetime.fromisoformat(until["output"]["resumed_at"]) >= at


async def test_a_time_already_past_does_not_pause(stack: Stack) -> None:
    flow = await stack.deploy(DELAYS)
    claimed = await jobs_claimed(stack)

    reply = await stack.trigger(flow["id"], {"at": "2000-01-01T00:00:00Z"}, sync=True)

    assert reply.status_code == 200
    assert reply.text == "done"
    run = await stack.run(reply.headers["x-sluice-run-id"])
    assert run["status"] == "SUCCEEDED"
    waited_until = datetime.fromisoformat(step(run, "until")["output"]["waited_until"])
    assert waited_until - datetime(2000, 1, 1, tzinfo=UTC) < timedelta(seconds=1)
    # "short" paused once, "until" did not: two executions of the run, not three.
    assert await jobs_claimed(stack) - claimed == 2


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


async def test_a_resume_that_arrives_before_the_wait_is_kept(stack: Stack) -> None:
    flow = await stack.deploy(
        {
            "name": "early",
            "steps": [
                {"id": "ask", "type": "respond", "body": "{{ resume_urls.later }}"},
                {"id": "first", "type": "delay", "seconds": 0.5},
                {"id": "later", "type": "wait_for_webhook"},
            ],
        }
    )
    asked = await stack.trigger(flow["id"], sync=True)
    run_id = asked.headers["x-sluice-run-id"]
    paused = await stack.wait_for_status(run_id, {"PAUSED"})
    assert [s["key"] for s in paused["steps"]] == ["ask", "first"]

    resumed = await stack.client.post(asked.text, json={"early": True})

    assert resumed.status_code == 202, resumed.text
    run = await stack.wait_for_status(run_id)
    assert run["status"] == "SUCCEEDED", run["error"]
    assert run["output"] == {"early": True}


async def test_a_wait_past_its_timeout_times_out_unless_errors_are_tolerated(
    stack: Stack,
) -> None:
    def flow(name: str, **fields: Any) -> dict[str, Any]:
        return {
            "name": name,
            "steps": [
                {"id": "approval", "type": "wait_for_webhook", "timeout_seconds": 0.3, **fields},
                {"id": "after", "type": "respond", "body": "{{ steps.approval.status }}"},
            ],
        }

    strict = await stack.deploy(flow("strict"))
    tolerant = await stack.deploy(flow("tolerant", continue_on_error=True))

    timed_out = await stack.wait_for_status(await started_run(stack, strict["id"]))
    tolerated = await stack.wait_for_status(await started_run(stack, tolerant["id"]))

    assert timed_out["status"] == "TIMEOUT"
    assert timed_out["error"] == "step 'approval' failed: not resumed within 0.3 seconds"
    assert step(timed_out, "approval")["status"] == "TIMEOUT"
    assert [s["key"] for s in timed_out["steps"]] == ["approval"]
    assert tolerated["status"] == "SUCCEEDED"
    assert step(tolerated, "approval")["status"] == "TIMEOUT"
    assert tolerated["response"]["body"] == "TIMEOUT"


async def test_a_run_waiting_past_the_paused_run_ttl_times_out_but_a_delay_does_not(
    database_url: str,
) -> None:
    async with running_stack(database_url, paused_run_ttl=0.5) as stack:
        waits = await stack.deploy(
            {"name": "waits", "steps": [{"id": "forever", "type": "wait_for_webhook"}]}
        )
        sleeps = await stack.deploy(
            {"name": "sleeps", "steps": [{"id": "nap", "type": "delay", "seconds": 1}]}
        )
        waiting = await started_run(stack, waits["id"])
        sleeping = await started_run(stack, sleeps["id"])

        expired = await stack.wait_for_status(waiting)
        slept = await stack.wait_for_status(sleeping)

    assert expired["status"] == "TIMEOUT"
    assert expired["error"] == "paused longer than SLUICE_PAUSED_RUN_TTL"
    assert slept["status"] == "SUCCEEDED"


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
