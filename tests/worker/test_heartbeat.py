"""The lease heartbeat, through a running worker: a lost lease cancels its execution."""

from __future__ import annotations

import asyncio

from app.jobs import Job, NewJob
from tests.integration.helpers import connect, fetchval
from tests.worker.running import enqueue, running


async def test_a_lost_lease_cancels_the_execution(database_url: str) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def hold(job: Job) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    (job_id,) = await enqueue(database_url, [NewJob("hold")])
    async with running(database_url, {"hold": hold}) as (worker, _stop, _task):
        await asyncio.wait_for(started.wait(), 10)
        async with await connect(database_url) as conn:
            # What a rescue and a re-claim by another worker leave behind.
            await conn.execute(
                "UPDATE jobs SET lease_owner = 'other-worker', attempt = attempt + 1 WHERE id = %s",
                (job_id,),
            )
        await asyncio.wait_for(cancelled.wait(), 10)
    assert worker.stats.completed == 0
    assert worker.stats.released == 0
    async with await connect(database_url) as conn:
        owner = await fetchval(conn, "SELECT lease_owner FROM jobs WHERE id = %s", (job_id,))
    assert owner == "other-worker", "the stale worker must not touch the new holder's job"
