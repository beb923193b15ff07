"""Webhook retries are safe: requests with the same Idempotency-Key for the same flow make
one run, and each gets the first request's answer — also when they race."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.flows.helpers import signature
from tests.flows.stack import Stack
from tests.integration.helpers import connect, fetchval

REPLY: dict[str, Any] = {
    "name": "reply",
    "steps": [{"id": "reply", "type": "respond", "status": 201, "body": "{{ trigger.body }}"}],
}


async def _runs(stack: Stack, database_url: str, flow_id: str) -> int:
    async with await connect(database_url) as conn:
        count: int = await fetchval(
            conn, "SELECT count(*) FROM flow_runs WHERE flow_id = %s", (flow_id,)
        )
    return count


async def test_a_retried_webhook_gets_the_first_run_and_makes_no_other(
    stack: Stack, database_url: str
) -> None:
    flow = await stack.deploy(REPLY)
    path = f"/webhooks/{flow['id']}"

    first = await stack.client.post(path, json={"n": 1}, headers={"idempotency-key": "event-1"})
    again = await stack.client.post(path, json={"n": 2}, headers={"idempotency-key": "event-1"})
    other = await stack.client.post(path, json={"n": 3}, headers={"idempotency-key": "event-2"})

    assert (first.status_code, again.status_code, other.status_code) == (202, 202, 202)
    assert again.json() == first.json()
    assert again.headers["x-sluice-run-id"] == first.json()["run_id"]
    assert other.json() != first.json()
    assert await _runs(stack, database_url, flow["id"]) == 2
    run = await stack.wait_for_status(first.json()["run_id"])
    assert run["trigger"]["body"] == {"n": 1}  # the retry's body started nothing


async def test_racing_requests_with_one_key_make_one_run(stack: Stack, database_url: str) -> None:
    flow = await stack.deploy(REPLY)

    answers = await asyncio.gather(
        *(
            stack.client.post(
                f"/webhooks/{flow['id']}", json={"n": n}, headers={"idempotency-key": "race"}
            )
            for n in range(20)
        )
    )

    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["run_id"] for a in answers}) == 1
    assert await _runs(stack, database_url, flow["id"]) == 1


async def test_a_retried_sync_webhook_gets_the_same_reply(stack: Stack, database_url: str) -> None:
    flow = await stack.deploy(REPLY)
    path = f"/webhooks/{flow['id']}/sync"
    headers = {"idempotency-key": "sync-event"}

    first = await stack.client.post(path, json={"n": 1}, headers=headers)
    again = await stack.client.post(path, json={"n": 2}, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() == {"n": 1}
    assert again.headers["x-sluice-run-id"] == first.headers["x-sluice-run-id"]
    assert await _runs(stack, database_url, flow["id"]) == 1


async def test_the_same_key_on_two_flows_makes_two_runs(stack: Stack, database_url: str) -> None:
    one = await stack.deploy(REPLY)
    two = await stack.deploy({**REPLY, "name": "reply-two"})
    headers = {"idempotency-key": "shared"}

    a = await stack.client.post(f"/webhooks/{one['id']}", json={}, headers=headers)
    b = await stack.client.post(f"/webhooks/{two['id']}", json={}, headers=headers)

    assert a.json()["run_id"] != b.json()["run_id"]


async def test_a_signed_flow_checks_the_signature_before_it_answers_a_retry(
    stack: Stack, database_url: str
) -> None:
    flow = await stack.deploy({**REPLY, "name": "signed", "trigger": {"secret": "s3cret"}})
    raw = json.dumps({"n": 1}).encode()
    signed = {
        "idempotency-key": "signed-event",
        "content-type": "application/json",
        "x-sluice-signature": signature("s3cret", raw),
    }
    path = f"/webhooks/{flow['id']}"

    first = await stack.client.post(path, content=raw, headers=signed)
    again = await stack.client.post(path, content=raw, headers=signed)
    forged = await stack.client.post(
        path, content=raw, headers={**signed, "x-sluice-signature": "sha256=" + "0" * 64}
    )

    assert (first.status_code, again.status_code, forged.status_code) == (202, 202, 401)
    assert again.json() == first.json()
    assert "run_id" not in forged.json()
    assert await _runs(stack, database_url, flow["id"]) == 1


async def test_a_key_longer_than_255_characters_is_refused(stack: Stack) -> None:
    flow = await stack.deploy(REPLY)
    answer = await stack.client.post(
        f"/webhooks/{flow['id']}", json={}, headers={"idempotency-key": "k" * 256}
    )
    assert answer.status_code == 400
    assert "idempotency-key" in answer.json()["error"]
