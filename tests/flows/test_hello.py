"""The issue's minimal example, as written, through a real app and worker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.flows import control
from app.signals import Listener
from app.web import application
from ops.smoke.flows import hello
from tests.flows.stack import Stack, running_stack

# The minimal example, as written (also what the smoke test deploys).
HELLO: dict[str, Any] = hello("hello")


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


class _DeafListener(Listener):
    """A listener that never connects: no NOTIFY reaches the app."""

    async def run(self) -> None:
        await asyncio.Event().wait()


async def test_a_worker_in_the_app_process_hands_the_reply_over_directly(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No NOTIFY reaches the app and it never reads a reply from the database: only the
    # in-process hand-over can answer the callers.
    monkeypatch.setattr(application, "Listener", _DeafListener)
    reads: list[object] = []

    async def no_read(*args: object) -> None:
        reads.append(args)

    monkeypatch.setattr(control, "reply", no_read)
    async with running_stack(
        database_url,
        in_process_replies=True,
        poll_interval_seconds=60,
        sync_timeout_seconds=5,
    ) as stack:
        flow = await stack.deploy(HELLO)
        replies = await asyncio.gather(
            *(stack.trigger(flow["id"], {"who": f"caller {n}"}, sync=True) for n in range(8))
        )

    assert [reply.status_code for reply in replies] == [200] * 8
    assert [reply.json() for reply in replies] == [{"hello": f"caller {n}"} for n in range(8)]
    assert reads == []
