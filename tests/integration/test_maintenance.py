"""The rescuer: only the elected leader runs the pass, and the role moves on its death."""

from __future__ import annotations

from app.jobs import NewJob, Queue
from app.locks import Leadership
from tests.integration.helpers import at, connect, eventually, fetchval
from worker.maintenance import ROLE, Maintenance

QUEUE = Queue(lease_seconds=30)


async def test_only_the_leader_rescues_and_a_follower_takes_over(database_url: str) -> None:
    leader = Maintenance(QUEUE, Leadership(database_url, ROLE), interval_seconds=1)
    follower = Maintenance(QUEUE, Leadership(database_url, ROLE), interval_seconds=1)
    async with await connect(database_url) as conn:
        await QUEUE.enqueue_many(conn, [NewJob("j") for _ in range(3)], now=at(0))
        jobs = await QUEUE.claim(conn, "crashed-worker", 3, now=at(0))
        try:
            first = await leader.tick(now=at(31))
            assert first is not None
            assert first.requeued == sorted(j.id for j in jobs)
            assert await follower.tick(now=at(31)) is None

            # The leader dies (its session is killed); the follower's next tick takes over.
            await QUEUE.claim(conn, "crashed-again", 3, now=at(31))
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks"
                " WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
            )

            async def follower_rescues() -> bool:
                report = await follower.tick(now=at(100))
                return report is not None and len(report.requeued) == 3

            await eventually(follower_rescues)
            assert await leader.tick(now=at(100)) is None
            queued = await fetchval(conn, "SELECT count(*) FROM jobs WHERE state = 'queued'")
            assert queued == 3
        finally:
            await leader.close()
            await follower.close()


async def test_rescue_pass_covers_more_than_one_batch(database_url: str) -> None:
    maintenance = Maintenance(QUEUE, Leadership(database_url, ROLE), interval_seconds=1)
    async with await connect(database_url) as conn:
        await QUEUE.enqueue_many(conn, [NewJob("j") for _ in range(2_500)], now=at(0))
        await QUEUE.claim(conn, "crashed-worker", 2_500, now=at(0))
    try:
        report = await maintenance.tick(now=at(31))
        assert report is not None
        assert len(report.requeued) == 2_500
    finally:
        await maintenance.close()
