"""`http` steps against a local server: the response as output, errors, the private guard."""

from __future__ import annotations

from typing import Any

from tests.flows.helpers import local_server, problem_at, rejected, started_run, step
from tests.flows.stack import Stack, running_stack


async def test_a_json_response_becomes_the_output_of_a_templated_request(stack: Stack) -> None:
    async with local_server() as server:
        flow = await stack.deploy(
            {
                "name": "caller",
                "steps": [
                    {
                        "id": "call",
                        "type": "http",
                        "method": "POST",
                        "url": server.url("/orders/{{ trigger.body.order }}"),
                        "headers": {"x-token": "t-{{ trigger.body.order }}"},
                        "body": {"qty": "{{ trigger.body.qty }}", "note": "fixed"},
                    },
                    {"id": "reply", "type": "respond", "body": "{{ steps.call.output.body }}"},
                ],
            }
        )

        reply = await stack.trigger(flow["id"], {"order": 17, "qty": 3}, sync=True)

    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "path": "/orders/17",
        "method": "POST",
        "echo": {"qty": 3, "note": "fixed"},
    }
    [received] = server.requests
    assert received.headers["x-token"] == "t-17"
    assert received.headers["content-type"] == "application/json"
    run = await stack.run(reply.headers["x-sluice-run-id"])
    call = step(run, "call")
    assert call["status"] == "SUCCEEDED"
    assert call["attempts"] == 1
    assert call["output"]["status"] == 200
    assert call["output"]["headers"]["content-type"] == "application/json"
    assert call["output"]["body"] == reply.json()


async def test_an_error_status_fails_the_step_and_keeps_the_response(stack: Stack) -> None:
    async with local_server() as server:
        server.script("/down", (500, {"reason": "maintenance"}))
        failing = await stack.deploy(
            {
                "name": "failing",
                "steps": [
                    {"id": "call", "type": "http", "url": server.url("/down")},
                    {"id": "after", "type": "respond", "body": "never"},
                ],
            }
        )
        not_a_url = await stack.deploy(
            {
                "name": "not-a-url",
                "steps": [{"id": "call", "type": "http", "url": "{{ trigger.body.n }}"}],
            }
        )

        failed = await stack.wait_for_status(await started_run(stack, failing["id"]))
        unrendered = await stack.wait_for_status(
            await started_run(stack, not_a_url["id"], {"n": 5})
        )

    assert failed["status"] == "FAILED"
    call = step(failed, "call")
    assert call["status"] == "FAILED"
    assert call["error"].startswith("HTTP 500 from 127.0.0.1")
    assert "maintenance" in call["error"]
    assert call["output"]["status"] == 500
    assert call["output"]["body"] == {"reason": "maintenance"}
    assert failed["error"] == f"step 'call' failed: {call['error']}"
    assert [s["key"] for s in failed["steps"]] == ["call"]

    assert unrendered["status"] == "FAILED"
    assert step(unrendered, "call")["error"] == "url must render to a string, got 5"


async def test_private_addresses_are_refused_unless_allowed(database_url: str) -> None:
    async with (
        local_server() as server,
        running_stack(database_url, http_allow_private=False) as stack,
    ):
        flow = await stack.deploy(
            {"name": "inward", "steps": [{"id": "call", "type": "http", "url": server.url("/")}]}
        )

        run = await stack.wait_for_status(await started_run(stack, flow["id"]))

    assert run["status"] == "FAILED"
    call = step(run, "call")
    assert call["status"] == "FAILED"
    assert "refused" in call["error"]
    assert "loopback" in call["error"]
    assert "SLUICE_HTTP_ALLOW_PRIVATE" in call["error"]
    assert server.requests == []


async def test_bad_http_steps_are_refused_at_deploy_with_their_paths(database_url: str) -> None:
    def flow(**fields: Any) -> dict[str, Any]:
        return {"name": "bad", "steps": [{"id": "h", "type": "http", **fields}]}

    url = "https://example.com/"
    async with running_stack(database_url, with_worker=False) as stack:
        assert "required" in problem_at(await rejected(stack, flow()), "steps[0].url").lower()
        scheme = await rejected(stack, flow(url="ftp://example.com/"))
        assert "http://" in problem_at(scheme, "steps[0].url")
        method = await rejected(stack, flow(url=url, method="FETCH"))
        assert "'GET'" in problem_at(method, "steps[0].method")
        header = await rejected(stack, flow(url=url, headers={"x-n": 5}))
        assert "string" in problem_at(header, "steps[0].headers.x-n")
        slow = await rejected(stack, flow(url=url, timeout_seconds=301))
        assert "300" in problem_at(slow, "steps[0].timeout_seconds")
        template = await rejected(stack, flow(url="https://x/{{ trigger.body.", body=None))
        assert problem_at(template, "steps[0].url")


async def test_a_request_cut_short_by_the_run_timeout_times_out_the_run(
    database_url: str,
) -> None:
    async with (
        local_server() as server,
        running_stack(database_url, run_timeout_seconds=1) as stack,
    ):
        server.hold("/slow")
        flow = await stack.deploy(
            {"name": "slow", "steps": [{"id": "call", "type": "http", "url": server.url("/slow")}]}
        )

        run = await stack.wait_for_steps(await started_run(stack, flow["id"]), ["call"])

    assert run["status"] == "TIMEOUT"
    assert [(s["key"], s["status"]) for s in run["steps"]] == [("call", "TIMEOUT")]
