"""A worker's graceful stop: quick jobs finish, slow ones are cancelled and handed back."""

from __future__ import annotations

import asyncio

from app.jobs import Job, NewJob
from tests.integration.helpers import connect, eventually, fetchval
from tests.worker.running import enqueue, settings_for
from worker.runner import Worker


async def test_graceful_stop_finishes_quick_jobs_and_releases_slow_ones(
    database_url: str,
) -> None:
    quick_may_finish = asyncio.Event()
    started: set[str] = set()
    cancelled: list[str] = []

    async def work(job: Job) -> str:
        started.add(job.payload)
        try:
            if job.payload == "quick":
                await quick_may_finish.wait()
            else:
                await asyncio.Event().wait()  # never finishes on its own
        except asyncio.CancelledError:
            cancelled.append(job.payload)
            raise
        return "done"

    quick, slow = await enqueue(database_url, [NewJob("work", "quick"), NewJob("work", "slow")])
    worker = Worker(settings_for(database_url, worker_grace_seconds=0.5), {"work": work})
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))

    async def both_started() -> bool:
        return started == {"quick", "slow"}

    await eventually(both_started)
    stop.set()
    quick_may_finish.set()
    await asyncio.wait_for(task, 30)

    assert cancelled == ["slow"]
    assert worker.stats.completed == 1
    assert worker.stats.released == 1
    async with await connect(database_url) as conn:
        cur = await conn.execute("SELECT id, state::text, lease_owner, last_error FROM jobs")
        rows = await cur.fetchall()
        stopped_at = await fetchval(
            conn, "SELECT stopped_at FROM workers WHERE id = %s", (worker.id,)
        )
    assert rows == [(slow, "queued", None, f"released by worker {worker.id} stopping")]
    assert quick not in {r[0] for r in rows}
    assert stopped_at is not None
