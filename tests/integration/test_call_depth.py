"""Deep call chains: a cancel or a timeout ends a chain of any depth in one statement (the
run-finished trigger used to recurse once per generation and overflow the stack)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from app.flows import control, runs
from app.flows.control import RunBudget
from tests.e2e.flow_helpers import deploy, new_project
from tests.integration.helpers import at, connect, fetchval

BUDGET = RunBudget(600, 5)
TRIGGER: dict[str, Any] = {"body": {}, "headers": {}, "query": {}}
FLOW: dict[str, Any] = {
    "name": "deep",
    "steps": [{"id": "call", "type": "call_flow", "flow": "deep"}],
}
DEPTH = 1000


async def _chain(database_url: str) -> tuple[int, list[UUID]]:
    async with await connect(database_url) as conn:
        project_id, _ = await new_project(conn, "deep")
        await deploy(conn, project_id, FLOW)
        target = await control.find_flow_by_name(conn, project_id, "deep")
        assert target is not None
        chain: list[UUID] = []
        async with conn.transaction():
            for depth in range(DEPTH):
                chain.append(
                    await control.create_run(
                        conn,
                        target,
                        TRIGGER,
                        BUDGET,
                        parent_run_id=chain[-1] if chain else None,
                        parent_step_key="call" if chain else None,
                        depth=depth,
                        now=at(0 if depth == 0 else 100),  # only the root times out first
                    )
                )
        return project_id, chain


async def test_canceling_the_root_of_a_chain_1000_deep_ends_every_run_in_it(
    database_url: str,
) -> None:
    project_id, chain = await _chain(database_url)
    async with await connect(database_url) as conn:
        async with conn.transaction():
            assert await control.cancel(conn, project_id, chain[0], now=at(5))
        statuses = await fetchval(
            conn,
            "SELECT array_agg(DISTINCT status) FROM flow_runs WHERE id = ANY(%s)",
            (chain,),
        )
        assert statuses == ["CANCELED"]
        assert await fetchval(conn, "SELECT count(*) FROM jobs") == 0
        errors = await fetchval(conn, "SELECT error FROM flow_runs WHERE id = %s", (chain[-1],))
        assert errors == f"ancestor run {chain[0]} ended: CANCELED"
        child_error = await fetchval(conn, "SELECT error FROM flow_runs WHERE id = %s", (chain[1],))
        assert child_error == f"parent run {chain[0]} ended: CANCELED"
        depths = await fetchval(
            conn, "SELECT max(depth) FROM flow_runs WHERE id = ANY(%s)", (chain,)
        )
        assert depths == DEPTH - 1


async def test_the_maintenance_pass_times_out_a_deep_chain_in_one_batch(
    database_url: str,
) -> None:
    _project_id, chain = await _chain(database_url)
    async with await connect(database_url) as conn:
        expired = await runs.expire_runs(conn, now=at(601))
        assert [e.run_id for e in expired] == [chain[0]]
        left = await fetchval(
            conn,
            "SELECT count(*) FROM flow_runs WHERE id = ANY(%s) AND status <> 'TIMEOUT'",
            (chain,),
        )
        assert left == 0
