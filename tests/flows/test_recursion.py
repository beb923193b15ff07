"""Flows that call themselves stop at SLUICE_MAX_CALL_DEPTH, and a project's live runs at
SLUICE_MAX_LIVE_RUNS: a webhook over the cap is answered 429."""

from __future__ import annotations

from typing import Any

from tests.flows.helpers import started_run
from tests.flows.stack import FINAL, running_stack
from tests.integration.helpers import connect, eventually, fetchval

WAITING: dict[str, Any] = {
    "name": "again",
    "steps": [{"id": "call", "type": "call_flow", "flow": "again"}],
}
FANNING: dict[str, Any] = {
    "name": "fan",
    "steps": [
        {"id": "left", "type": "call_flow", "flow": "fan", "wait": False},
        {"id": "right", "type": "call_flow", "flow": "fan", "wait": False},
    ],
}


async def _final(database_url: str, count: int) -> bool:
    async with await connect(database_url) as conn:
        final = await fetchval(
            conn, "SELECT count(*) FROM flow_runs WHERE sluice_run_is_final(status)"
        )
        total = await fetchval(conn, "SELECT count(*) FROM flow_runs")
    return bool(final == total == count)


async def test_a_flow_calling_itself_stops_at_the_depth_limit(database_url: str) -> None:
    async with running_stack(database_url, max_call_depth=3) as stack:
        flow = await stack.deploy(WAITING)
        root = await started_run(stack, flow["id"])
        await eventually(lambda: _final(database_url, 4), within=30)
        run = await stack.wait_for_status(root, FINAL)
        async with await connect(database_url) as conn:
            cur = await conn.execute("SELECT depth, status FROM flow_runs ORDER BY depth")
            chain = await cur.fetchall()
            deepest = await fetchval(conn, "SELECT error FROM flow_runs WHERE depth = 3")

    assert chain == [(0, "FAILED"), (1, "FAILED"), (2, "FAILED"), (3, "FAILED")]
    assert "3 calls deep; SLUICE_MAX_CALL_DEPTH (3) allows no deeper call" in deepest
    assert run["status"] == "FAILED"


async def test_a_flow_fanning_out_to_itself_makes_a_bounded_tree(database_url: str) -> None:
    async with running_stack(database_url, max_call_depth=4, worker_concurrency=8) as stack:
        flow = await stack.deploy(FANNING)
        await started_run(stack, flow["id"])
        # 1 + 2 + 4 + 8 + 16 runs; those at depth 4 cannot call and fail.
        await eventually(lambda: _final(database_url, 31), within=60)
        async with await connect(database_url) as conn:
            cur = await conn.execute(
                "SELECT depth, status, count(*) FROM flow_runs GROUP BY 1, 2 ORDER BY 1"
            )
            tree = await cur.fetchall()

    assert tree == [
        (0, "SUCCEEDED", 1),
        (1, "SUCCEEDED", 2),
        (2, "SUCCEEDED", 4),
        (3, "SUCCEEDED", 8),
        (4, "FAILED", 16),
    ]


async def test_a_webhook_over_the_projects_live_run_cap_is_answered_429(
    database_url: str,
) -> None:
    async with running_stack(database_url, with_worker=False, max_live_runs=2) as stack:
        flow = await stack.deploy(WAITING)
        first = await stack.trigger(flow["id"])
        second = await stack.trigger(flow["id"])
        third = await stack.trigger(flow["id"])

    assert (first.status_code, second.status_code, third.status_code) == (202, 202, 429)
    assert "SLUICE_MAX_LIVE_RUNS" in third.json()["error"]
