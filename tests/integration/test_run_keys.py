"""Idempotency keys in the run store, at injected instants: a key answers with its run for
its window, then is free again; the maintenance pass forgets keys past the window."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from app.flows import control
from app.flows.control import Key, RunBudget
from tests.e2e.flow_helpers import deploy, new_project
from tests.integration.helpers import at, connect, fetchval

WINDOW = 3600.0
KEY = Key("event-7", WINDOW)
BUDGET = RunBudget(600, 5)
TRIGGER: dict[str, Any] = {"body": {}, "headers": {}, "query": {}}
FLOW: dict[str, Any] = {"name": "f", "steps": [{"id": "r", "type": "respond", "body": 1}]}


async def test_a_key_answers_with_its_run_for_its_window_then_is_free(database_url: str) -> None:
    async with await connect(database_url) as conn:
        project_id, _ = await new_project(conn, "keys")
        flow_id = await deploy(conn, project_id, FLOW)

        async def start(seconds: float) -> tuple[bool, UUID]:
            run_id = uuid4()
            started = await control.start_webhook_run(
                conn, run_id, flow_id, TRIGGER, BUDGET, key=KEY, now=at(seconds)
            )
            return started, run_id

        first, first_id = await start(0)
        retried, _ = await start(WINDOW - 1)
        assert (first, retried) == (True, False)
        assert await control.keyed_run(conn, flow_id, KEY, now=at(WINDOW - 1)) == first_id
        assert await control.keyed_run(conn, flow_id, KEY, now=at(WINDOW + 1)) is None

        later, later_id = await start(WINDOW + 1)

        assert later
        assert await control.keyed_run(conn, flow_id, KEY, now=at(WINDOW + 2)) == later_id
        runs = await fetchval(conn, "SELECT count(*) FROM flow_runs WHERE flow_id = %s", (flow_id,))
        assert runs == 2


async def test_maintenance_forgets_keys_past_their_window(database_url: str) -> None:
    async with await connect(database_url) as conn:
        project_id, _ = await new_project(conn, "keys")
        flow_id = await deploy(conn, project_id, FLOW)
        for n, seconds in enumerate((0, 10, 20)):
            assert await control.start_webhook_run(
                conn, uuid4(), flow_id, TRIGGER, BUDGET, key=Key(f"k{n}", WINDOW), now=at(seconds)
            )

        assert await control.forget_keys(conn, WINDOW, now=at(WINDOW + 15)) == 2

        left = await fetchval(conn, "SELECT array_agg(key) FROM run_keys")
        assert left == ["k2"]
