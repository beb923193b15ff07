"""Schedules fired by the maintenance pass against the real database, at injected times:
each due tick is one run exactly once (racing passes, a change of leader), overlap, catch-up,
the cap of live runs, and disabled, deleted and redeployed flows."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID, uuid4

from psycopg import AsyncConnection

from app.flows import store
from app.flows.control import RunBudget
from app.jobs import Queue
from app.locks import Leadership
from app.schedules import firing
from tests.e2e.flow_helpers import deploy, new_project
from tests.integration.helpers import at, connect, eventually, fetchval, wait_until_blocked_on_lock
from worker.maintenance import ROLE, Maintenance

BUDGET = RunBudget(600, 5)
STEPS = [{"id": "r", "type": "respond", "body": "{{ trigger.scheduled_at }}"}]


def scheduled(**trigger: Any) -> dict[str, Any]:
    return {"name": "tick", "trigger": {"type": "schedule", **trigger}, "steps": STEPS}


async def deployed(
    conn: AsyncConnection[Any], document: dict[str, Any], *, seconds: float = 0
) -> tuple[int, UUID]:
    """A project with the flow, its latest version deployed at(seconds)."""
    project_id, _ = await new_project(conn, f"sched-{uuid4().hex[:8]}")
    flow_id = await redeploy(conn, project_id, document, seconds=seconds)
    return project_id, flow_id


async def redeploy(
    conn: AsyncConnection[Any], project_id: int, document: dict[str, Any], *, seconds: float
) -> UUID:
    flow_id = await deploy(conn, project_id, document)
    await conn.execute(
        "UPDATE flow_versions SET created_at = %s WHERE flow_id = %s AND version ="
        " (SELECT max(version) FROM flow_versions WHERE flow_id = %s)",
        (at(seconds), flow_id, flow_id),
    )
    return flow_id


async def ticks_of_runs(conn: AsyncConnection[Any], flow_id: UUID) -> list[str]:
    cur = await conn.execute(
        "SELECT trigger ->> 'scheduled_at' FROM flow_runs WHERE flow_id = %s ORDER BY 1",
        (flow_id,),
    )
    return [str(row[0]) for row in await cur.fetchall()]


def iso(seconds: float) -> str:
    return at(seconds).isoformat()


async def finish_runs(conn: AsyncConnection[Any], flow_id: UUID) -> None:
    await conn.execute(
        "UPDATE flow_runs SET status = 'SUCCEEDED', finished_at = now() WHERE flow_id = %s"
        " AND status IN ('QUEUED', 'RUNNING', 'PAUSED')",
        (flow_id,),
    )


async def fire(conn: AsyncConnection[Any], seconds: float) -> list[firing.Fired]:
    return await firing.fire_due(conn, BUDGET, now=at(seconds))


async def test_a_tick_starts_one_run_that_sees_its_time(database_url: str) -> None:
    async with await connect(database_url) as conn:
        await deployed(conn, scheduled(every="5s", overlap="allow", input={"n": 1}), seconds=1)
        assert await fire(conn, 4) == []
        (fired,) = await fire(conn, 6)
        assert (fired.outcome, fired.tick_at) == ("run", at(5))
        assert await fire(conn, 6) == []
        trigger = await fetchval(
            conn, "SELECT trigger FROM flow_runs WHERE id = %s", (fired.run_id,)
        )
        assert trigger == {
            "body": {"n": 1},
            "headers": {},
            "query": {},
            "scheduled_at": iso(5),
            "schedule": 0,
        }
        jobs = await fetchval(conn, "SELECT count(*) FROM jobs WHERE run_id = %s", (fired.run_id,))
        assert jobs == 1


async def test_two_racing_passes_fire_a_tick_once(database_url: str) -> None:
    async with await connect(database_url) as first, await connect(database_url) as second:
        _, flow_id = await deployed(first, scheduled(every="5s", catch_up="all", overlap="allow"))
        second_pid = await fetchval(second, "SELECT pg_backend_pid()")
        async with first.transaction():
            mine = await fire(first, 12)
            assert [f.tick_at for f in mine] == [at(5), at(10)]
            # The second pass computed the same ticks and waits on the first's keys.
            racing = asyncio.create_task(fire(second, 12))
            await wait_until_blocked_on_lock(first, second_pid)
        assert await racing == []
        assert await ticks_of_runs(first, flow_id) == [iso(5), iso(10)]


async def test_a_new_leader_goes_on_where_the_old_one_stopped(database_url: str) -> None:
    queue = Queue(lease_seconds=30)
    leader = Maintenance(queue, Leadership(database_url, ROLE), 1, schedules=BUDGET)
    follower = Maintenance(queue, Leadership(database_url, ROLE), 1, schedules=BUDGET)
    async with await connect(database_url) as conn:
        _, flow_id = await deployed(conn, scheduled(every="5s", catch_up="all", overlap="allow"))
        try:
            assert await leader.tick(now=at(11)) is not None
            assert await follower.tick(now=at(11)) is None
            # The leader dies mid-window; the follower takes over later, at 27 s.
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks"
                " WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
            )

            async def follower_leads() -> bool:
                return await follower.tick(now=at(27)) is not None

            await eventually(follower_leads)
            assert await follower.tick(now=at(31)) is not None
        finally:
            await leader.close()
            await follower.close()
        assert await ticks_of_runs(conn, flow_id) == [iso(s) for s in (5, 10, 15, 20, 25, 30)]


async def test_overlap_skip_waits_for_the_schedules_own_run(database_url: str) -> None:
    async with await connect(database_url) as conn:
        _, flow_id = await deployed(conn, scheduled(every="5s", catch_up="all"))
        outcomes = [(f.tick_at, f.outcome) for f in await fire(conn, 11)]
        assert outcomes == [(at(5), "run"), (at(10), "overlap")]
        assert [f.outcome for f in await fire(conn, 16)] == ["overlap"]
        await finish_runs(conn, flow_id)
        assert [f.outcome for f in await fire(conn, 21)] == ["run"]
        assert await ticks_of_runs(conn, flow_id) == [iso(5), iso(20)]


async def test_overlap_queue_and_allow_start_a_run_per_tick(database_url: str) -> None:
    async with await connect(database_url) as conn:
        for overlap in ("queue", "allow"):
            _, flow_id = await deployed(conn, scheduled(every="5s", overlap=overlap))
            assert [f.outcome for f in await fire(conn, 6)] == ["run"]
            assert [f.outcome for f in await fire(conn, 11)] == ["run"]
            assert await ticks_of_runs(conn, flow_id) == [iso(5), iso(10)]
            await store.delete(conn, (await project_of(conn, flow_id)), "tick")


async def project_of(conn: AsyncConnection[Any], flow_id: UUID) -> int:
    return int(await fetchval(conn, "SELECT project_id FROM flows WHERE id = %s", (flow_id,)))


async def test_catch_up_after_downtime(database_url: str) -> None:
    async with await connect(database_url) as conn:
        flows = {}
        for mode in ("none", "latest", "all"):
            document = {**scheduled(cron="*/5 * * * *", catch_up=mode, overlap="allow")}
            flows[mode] = (await deployed(conn, {**document, "name": f"c-{mode}"}))[1]
        # Every schedule fired on time at 5 min; then nothing ran until 26 min 30 s.
        assert len(await fire(conn, 301)) == 3
        await fire(conn, 1590)
        assert await ticks_of_runs(conn, flows["none"]) == [iso(300)]
        assert await ticks_of_runs(conn, flows["latest"]) == [iso(300), iso(1500)]
        assert await ticks_of_runs(conn, flows["all"]) == [iso(300 * m) for m in range(1, 6)]


async def test_a_tick_over_the_cap_is_skipped_once(database_url: str) -> None:
    capped = RunBudget(600, 5, max_live_runs=1)
    async with await connect(database_url) as conn:
        _, flow_id = await deployed(conn, scheduled(every="5s", overlap="allow"))
        assert [f.outcome for f in await firing.fire_due(conn, capped, now=at(6))] == ["run"]
        assert [f.outcome for f in await firing.fire_due(conn, capped, now=at(11))] == ["cap"]
        assert await firing.fire_due(conn, capped, now=at(12)) == []
        await finish_runs(conn, flow_id)
        assert [f.outcome for f in await firing.fire_due(conn, capped, now=at(16))] == ["run"]
        assert await ticks_of_runs(conn, flow_id) == [iso(5), iso(15)]


async def test_disabling_pauses_and_deleting_stops(database_url: str) -> None:
    async with await connect(database_url) as conn:
        project_id, flow_id = await deployed(
            conn, scheduled(every="5s", catch_up="none", overlap="allow")
        )
        await store.set_enabled(conn, project_id, "tick", False)
        assert await fire(conn, 6) == []
        await store.set_enabled(conn, project_id, "tick", True)
        assert [f.tick_at for f in await fire(conn, 11)] == [at(10)]
        await store.delete(conn, project_id, "tick")
        assert await fire(conn, 16) == []
        assert await ticks_of_runs(conn, flow_id) == [iso(10)]


async def test_a_new_version_replaces_the_schedules_and_fires_no_tick_again(
    database_url: str,
) -> None:
    async with await connect(database_url) as conn:
        project_id, flow_id = await deployed(conn, scheduled(every="5s", overlap="allow"))
        assert len(await fire(conn, 6)) == 1
        # v2 keeps the 5 s rule (with another input) and adds a minutely cron, at 7 s.
        v2 = {
            **scheduled(every="5s", overlap="allow", input=2),
            "trigger": [
                {"type": "schedule", "every": "5s", "overlap": "allow", "input": 2},
                {"type": "schedule", "cron": "* * * * *", "overlap": "allow"},
            ],
        }
        await redeploy(conn, project_id, v2, seconds=7)
        assert await fire(conn, 7) == []
        # v3 drops the 5 s rule: it fires no more.
        v3 = {**v2, "trigger": v2["trigger"][1:]}
        await redeploy(conn, project_id, v3, seconds=12)
        assert [f.tick_at for f in await fire(conn, 61)] == [at(60)]
        assert await ticks_of_runs(conn, flow_id) == [iso(5), iso(60)]


async def test_old_ticks_are_forgotten_but_each_schedules_latest_is_kept(
    database_url: str,
) -> None:
    async with await connect(database_url) as conn:
        _, flow_id = await deployed(conn, scheduled(every="5s", catch_up="all", overlap="allow"))
        await fire(conn, 20)
        await finish_runs(conn, flow_id)
        day = firing.TICK_WINDOW_SECONDS
        assert await firing.forget_ticks(conn, day, now=at(day + 100)) == 3
        assert await fire(conn, 21) == []
        count = await fetchval(conn, "SELECT count(*) FROM schedule_ticks")
        assert count == 1
