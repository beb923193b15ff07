"""The hot path: a sync webhook of a flow that runs at once costs four statements in a
WORKER_AND_APP process — the run and its job, the claim, the run's start, its end (with
its steps and reply) — and nothing else: no NOTIFY, no second claim, no poll.

Statements are counted where psycopg sends them (every cursor of this process), and named
by the `app/sql` block they come from.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import psycopg
import pytest

from app import queries
from tests.flows.stack import running_stack

BENCH_FLOW: dict[str, Any] = {
    "name": "bench",
    "steps": [
        {"id": "ok", "type": "code", "code": "def run(input, ctx):\n    return True"},
        {"id": "reply", "type": "respond", "body": "{{ steps.ok.output }}"},
    ],
}
REQUESTS = 20


def _names() -> dict[str, str]:
    return {
        statement: f"{path.stem}.{name}"
        for path in queries.sql_files()
        for name, statement in queries.load(path.stem).items()
    }


async def test_a_sync_webhook_costs_four_statements(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = _names()
    sent: Counter[str] = Counter()
    counting = False
    execute = psycopg.AsyncCursor.execute

    async def counted(self: Any, query: Any, params: Any = None, **options: Any) -> Any:
        if counting:
            sent[names.get(query, " ".join(str(query).split())[:60])] += 1
        return await execute(self, query, params, **options)

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", counted)
    async with running_stack(
        database_url,
        in_process_replies=True,
        poll_interval_seconds=60,
        maintenance_interval_seconds=60,
        heartbeat_interval_seconds=25,
        lease_ttl_seconds=60,
    ) as stack:
        flow = await stack.deploy(BENCH_FLOW)
        for _ in range(3):  # warm: the flow's definition cached, a sandbox started
            assert (await stack.trigger(flow["id"], sync=True)).status_code == 200
        counting = True
        for _ in range(REQUESTS):
            reply = await stack.trigger(flow["id"], sync=True)
            assert reply.status_code == 200, reply.text
            assert reply.json() is True
        counting = False

    assert dict(sent) == {
        "control.start_webhook_run": REQUESTS,
        "jobs.claim_jobs": REQUESTS,
        "runs.start_run": REQUESTS,
        "runs.finish_execution": REQUESTS,
    }
