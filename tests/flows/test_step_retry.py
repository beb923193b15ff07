"""Step `retry` and `continue_on_error`: attempts, backoff, exhaustion, tolerated failures."""

from __future__ import annotations

from typing import Any

from tests.flows.helpers import code, local_server, problem_at, rejected, started_run, step
from tests.flows.stack import Stack, running_stack
from tests.integration.helpers import eventually


async def test_a_step_that_fails_twice_then_succeeds_is_retried(stack: Stack) -> None:
    async with local_server() as server:
        server.script("/flaky", (500, {"try": 1}), (503, {"try": 2}), (200, {"try": 3}))
        server.script("/flakier", (500, {}), (200, {"ok": True}))
        flow = await stack.deploy(
            {
                "name": "persistent",
                "steps": [
                    {
                        "id": "flaky",
                        "type": "http",
                        "url": server.url("/flaky"),
                        "retry": {"max_attempts": 3, "backoff_seconds": 0.3},
                    },
                    {
                        "id": "flakier",
                        "type": "http",
                        "url": server.url("/flakier"),
                        "retry": {"max_attempts": 5, "backoff_seconds": 0},
                    },
                ],
            }
        )
        run_id = await started_run(stack, flow["id"])

        async def retrying() -> bool:
            run = await stack.run(run_id)
            return any(s["key"] == "flaky" and s["status"] == "RETRYING" for s in run["steps"])

        await eventually(retrying)
        run = await stack.wait_for_status(run_id)

    assert run["status"] == "SUCCEEDED", run["error"]
    flaky = step(run, "flaky")
    assert (flaky["status"], flaky["attempts"], flaky["error"]) == ("SUCCEEDED", 3, None)
    assert flaky["output"]["body"] == {"try": 3}
    first, _second, third = server.hits("/flaky")
    assert third.at - first.at >= 0.6
    flakier = step(run, "flakier")
    assert (flakier["status"], flakier["attempts"]) == ("SUCCEEDED", 2)
    assert len(server.hits("/flakier")) == 2


async def test_a_step_that_keeps_failing_fails_after_its_attempts(stack: Stack) -> None:
    flow = await stack.deploy(
        {
            "name": "hopeless",
            "steps": [
                code(
                    "fail",
                    "def run(input, ctx):\n    raise ValueError('still broken')",
                    retry={"max_attempts": 2, "backoff_seconds": 0.1},
                ),
                {"id": "after", "type": "respond", "body": "never"},
            ],
        }
    )

    run = await stack.wait_for_status(await started_run(stack, flow["id"]))

    assert run["status"] == "FAILED"
    fail = step(run, "fail")
    assert (fail["status"], fail["attempts"]) == ("FAILED", 2)
    assert "ValueError: still broken" in fail["error"]
    assert [s["key"] for s in run["steps"]] == ["fail"]


async def test_continue_on_error_lets_later_steps_see_the_failure(stack: Stack) -> None:
    async with local_server() as server:
        server.script("/down", (500, {"reason": "down"}))
        flow = await stack.deploy(
            {
                "name": "tolerant",
                "steps": [
                    {
                        "id": "call",
                        "type": "http",
                        "url": server.url("/down"),
                        "retry": {"max_attempts": 2, "backoff_seconds": 0},
                        "continue_on_error": True,
                    },
                    code(
                        "report",
                        "def run(input, ctx):\n    return input",
                        input={
                            "status": "{{ steps.call.status }}",
                            "error": "{{ steps.call.error }}",
                            "body": "{{ steps.call.output.body }}",
                        },
                    ),
                ],
            }
        )

        run = await stack.wait_for_status(await started_run(stack, flow["id"]))

    assert run["status"] == "SUCCEEDED", run["error"]
    assert run["error"] is None
    call = step(run, "call")
    assert (call["status"], call["attempts"]) == ("FAILED", 2)
    assert step(run, "report")["output"] == {
        "status": "FAILED",
        "error": call["error"],
        "body": {"reason": "down"},
    }
    assert call["error"].startswith("HTTP 500")
    assert len(server.hits("/down")) == 2


async def test_bad_retry_settings_are_refused_at_deploy(database_url: str) -> None:
    def flow(**fields: Any) -> dict[str, Any]:
        return {"name": "bad", "steps": [{"id": "r", "type": "respond", **fields}]}

    async with running_stack(database_url, with_worker=False) as stack:
        zero = await rejected(stack, flow(retry={"max_attempts": 0}))
        assert "greater than or equal to 1" in problem_at(zero, "steps[0].retry.max_attempts")
        negative = await rejected(stack, flow(retry={"backoff_seconds": -1}))
        assert "greater than or equal to 0" in problem_at(
            negative, "steps[0].retry.backoff_seconds"
        )
        extra = await rejected(stack, flow(retry={"max_attempts": 2, "jitter": True}))
        assert "not permitted" in problem_at(extra, "steps[0].retry.jitter")
        number = await rejected(stack, flow(retry=3))
        assert problem_at(number, "steps[0].retry")
        tolerant = await rejected(stack, flow(continue_on_error="yes"))
        assert "boolean" in problem_at(tolerant, "steps[0].continue_on_error")
