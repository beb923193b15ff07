"""`respond` steps and what a sync webhook caller gets: the reply as set, the final output,
an error at once, or 202 when the run takes longer than SLUICE_SYNC_TIMEOUT_SECONDS."""

from __future__ import annotations

import time
from typing import Any

from tests.flows.helpers import code, problem_at, rejected, step
from tests.flows.stack import Stack, running_stack


def responding(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "steps": [{"id": "reply", "type": "respond", **fields}]}


async def test_the_reply_has_the_status_headers_and_body_set(stack: Stack) -> None:
    text = await stack.deploy(
        responding(
            "text",
            status=201,
            headers={"X-Custom": "v-{{ trigger.body.n }}", "Content-Length": "1"},
            body="hello {{ trigger.body.n }}",
        )
    )
    csv = await stack.deploy(
        responding("csv", headers={"content-type": "text/csv"}, body="a,b\n1,{{ trigger.body.n }}")
    )
    data = await stack.deploy(
        responding(
            "data", status=404, body={"missing": "{{ trigger.body.n }}", "list": [True, None]}
        )
    )

    text_reply = await stack.trigger(text["id"], {"n": 3}, sync=True)
    csv_reply = await stack.trigger(csv["id"], {"n": 4}, sync=True)
    data_reply = await stack.trigger(data["id"], {"n": 5}, sync=True)

    assert text_reply.status_code == 201
    assert text_reply.headers["x-custom"] == "v-3"
    assert text_reply.headers["content-type"] == "text/plain; charset=utf-8"
    assert text_reply.text == "hello 3"
    assert text_reply.headers["content-length"] == str(len("hello 3"))
    assert csv_reply.status_code == 200
    assert csv_reply.headers["content-type"] == "text/csv"
    assert csv_reply.text == "a,b\n1,4"
    assert data_reply.status_code == 404
    assert data_reply.headers["content-type"] == "application/json"
    assert data_reply.json() == {"missing": 5, "list": [True, None]}
    run = await stack.run(text_reply.headers["x-sluice-run-id"])
    assert step(run, "reply")["output"] == run["response"]
    assert run["response"]["body"] == "hello 3"
    assert run["response"]["status"] == 201


async def test_without_respond_a_sync_caller_gets_the_final_output_or_the_error(
    stack: Stack,
) -> None:
    plain = await stack.deploy(
        {"name": "plain", "steps": [code("last", "def run(input, ctx):\n    return [1, 'two']")]}
    )
    failing = await stack.deploy(
        {
            "name": "failing",
            "steps": [code("last", "def run(input, ctx):\n    raise KeyError('gone')")],
        }
    )

    output = await stack.trigger(plain["id"], sync=True)
    began = time.monotonic()
    failed = await stack.trigger(failing["id"], sync=True)
    answered_in = time.monotonic() - began

    assert output.status_code == 200
    assert output.json() == [1, "two"]
    assert failed.status_code == 500
    body = failed.json()
    assert set(body) == {"run_id", "status", "error"}
    assert body["run_id"] == failed.headers["x-sluice-run-id"]
    assert body["status"] == "FAILED"
    assert body["error"] == "KeyError: 'gone'"  # one line: the traceback stays in the run
    assert answered_in < stack.settings.sync_timeout_seconds / 2


async def test_a_run_slower_than_the_sync_timeout_answers_202(database_url: str) -> None:
    async with running_stack(database_url, sync_timeout_seconds=0.5) as stack:
        flow = await stack.deploy(
            {"name": "slow", "steps": [{"id": "later", "type": "wait_for_webhook"}]}
        )

        reply = await stack.trigger(flow["id"], sync=True)

        assert reply.status_code == 202
        run_id = reply.json()["run_id"]
        assert reply.json() == {"run_id": run_id}
        assert reply.headers["x-sluice-run-id"] == run_id
        assert (await stack.run(run_id))["status"] in ("QUEUED", "RUNNING", "PAUSED")


async def test_bad_respond_steps_are_refused_at_deploy(database_url: str) -> None:
    def flow(**fields: Any) -> dict[str, Any]:
        return responding("bad", **fields)

    async with running_stack(database_url, with_worker=False) as stack:
        high = await rejected(stack, flow(status=700))
        assert "599" in problem_at(high, "steps[0].status")
        text = await rejected(stack, flow(status="200"))
        assert "integer" in problem_at(text, "steps[0].status")
        header = await rejected(stack, flow(headers={"x": ["a"]}))
        assert "string" in problem_at(header, "steps[0].headers.x")
        body = await rejected(stack, flow(body={"a": ["{{ 1 + }}"]}))
        assert problem_at(body, "steps[0].body.a[0]")
        extra = await rejected(stack, flow(code="x"))
        assert "not permitted" in problem_at(extra, "steps[0].code")


async def test_an_informational_status_is_refused_at_deploy(database_url: str) -> None:
    async with running_stack(database_url, with_worker=False) as stack:
        problems = await rejected(stack, responding("early", status=101))

    assert problem_at(problems, "steps[0].status")


async def test_a_header_name_that_is_not_a_token_is_refused_at_deploy(database_url: str) -> None:
    async with running_stack(database_url, with_worker=False) as stack:
        problems = await rejected(stack, responding("spaced", headers={"bad name": "v"}))

    assert problems


async def test_a_header_value_with_a_line_break_still_gets_a_reply(stack: Stack) -> None:
    flow = await stack.deploy(
        responding("echoes", headers={"x-echo": "{{ trigger.body.v }}"}, body="ok")
    )

    reply = await stack.trigger(flow["id"], {"v": "a\r\nset-cookie: evil=1"}, sync=True)

    assert "set-cookie" not in reply.headers
    assert reply.headers["x-sluice-run-id"]
