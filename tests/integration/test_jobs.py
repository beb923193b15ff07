"""The queue core against real Postgres: enqueue, claim, fencing, retry, rescue."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from app.jobs import Lease, NewJob, Queue
from tests.integration.helpers import (
    at,
    connect,
    create_project,
    fetchval,
    wait_until_blocked_on_lock,
)

QUEUE = Queue(lease_seconds=30, default_max_attempts=3)


async def test_enqueue_returns_ids_in_input_order_and_applies_defaults(
    pool: AsyncConnectionPool[Any],
) -> None:
    async with pool.connection() as conn:
        results = await QUEUE.enqueue_many(
            conn,
            [NewJob("a", {"n": 1}), NewJob("b", [1, 2], max_attempts=7), NewJob("c", "text")],
            now=at(0),
        )
        assert [r.created for r in results] == [True, True, True]
        cur = await conn.execute(
            "SELECT id, kind, payload, max_attempts, state::text, attempt, run_at FROM jobs"
            " ORDER BY id"
        )
        rows = await cur.fetchall()
    assert [r[0] for r in rows] == [r.job_id for r in results]
    assert [(r[1], r[2], r[3], r[4], r[5]) for r in rows] == [
        ("a", {"n": 1}, 3, "queued", 0),
        ("b", [1, 2], 7, "queued", 0),
        ("c", "text", 3, "queued", 0),
    ]
    assert all(r[6] == at(0) for r in rows)


async def test_enqueue_commits_with_the_callers_transaction(
    pool: AsyncConnectionPool[Any],
) -> None:
    async with pool.connection() as conn:
        async with conn.transaction():
            await QUEUE.enqueue(conn, NewJob("lost"))
            raise psycopg.Rollback  # the caller's transaction fails after the enqueue
        assert await fetchval(conn, "SELECT count(*) FROM jobs") == 0
        async with conn.transaction():
            await QUEUE.enqueue(conn, NewJob("kept"))
        assert await fetchval(conn, "SELECT count(*) FROM jobs") == 1


async def test_claim_orders_by_priority_then_run_at_then_id(
    pool: AsyncConnectionPool[Any],
) -> None:
    async with pool.connection() as conn:
        await QUEUE.enqueue_many(
            conn,
            [
                NewJob("late", run_at=at(5)),
                NewJob("early", run_at=at(1)),
                NewJob("urgent", priority=-1, run_at=at(9)),
                NewJob("early-second", run_at=at(1)),
                NewJob("background", priority=5, run_at=at(0)),
            ],
        )
        claimed = await QUEUE.claim(conn, "w", 10, now=at(10))
    assert [j.kind for j in claimed] == ["urgent", "early", "early-second", "late", "background"]


async def test_delayed_job_is_claimed_only_once_due(pool: AsyncConnectionPool[Any]) -> None:
    async with pool.connection() as conn:
        await QUEUE.enqueue(conn, NewJob("later", run_at=at(60)))
        assert await QUEUE.claim(conn, "w", 10, now=at(59)) == []
        (job,) = await QUEUE.claim(conn, "w", 10, now=at(60))
    assert job.kind == "later"
    assert job.attempt == 1
    assert job.lease_owner == "w"
    assert job.lease_expires_at == at(90)


async def test_claim_takes_at_most_the_free_slots(pool: AsyncConnectionPool[Any]) -> None:
    async with pool.connection() as conn:
        await QUEUE.enqueue_many(conn, [NewJob("j") for _ in range(5)], now=at(0))
        assert len(await QUEUE.claim(conn, "w", 3, now=at(1))) == 3
        assert len(await QUEUE.claim(conn, "w", 0, now=at(1))) == 0
        assert len(await QUEUE.claim(conn, "w", 3, now=at(1))) == 2
        assert await QUEUE.claim(conn, "w", 3, now=at(1)) == []


# --- idempotency -----------------------------------------------------------------------


async def test_idempotency_key_returns_the_existing_job(pool: AsyncConnectionPool[Any]) -> None:
    async with pool.connection() as conn:
        first = await QUEUE.enqueue(conn, NewJob("a", idempotency_key="order-1"))
        batch = await QUEUE.enqueue_many(
            conn,
            [
                NewJob("a", idempotency_key="order-1"),
                NewJob("b", idempotency_key="order-2"),
                NewJob("b", idempotency_key="order-2"),
                NewJob("c"),
            ],
        )
        count = await fetchval(conn, "SELECT count(*) FROM jobs")
    assert first.created
    assert batch[0] == (first.job_id, False)
    assert batch[1].created
    assert batch[2] == (batch[1].job_id, False)
    assert batch[3].created
    assert count == 3


async def test_concurrent_enqueues_with_one_key_yield_one_job(database_url: str) -> None:
    """The first transaction holds the key uncommitted while seven others race for it: they
    block on the unique index, then all return the committed job."""
    holder = await connect(database_url)
    observer = await connect(database_url)
    racers = [await connect(database_url) for _ in range(7)]
    try:
        async with holder.transaction():
            held = await QUEUE.enqueue(holder, NewJob("pay", idempotency_key="invoice-9"))
            tasks = [
                asyncio.create_task(QUEUE.enqueue(c, NewJob("pay", idempotency_key="invoice-9")))
                for c in racers
            ]
            for racer in racers:
                await wait_until_blocked_on_lock(observer, racer.info.backend_pid)
        results = await asyncio.gather(*tasks)
        assert held.created
        assert all(r == (held.job_id, False) for r in results)
        assert await fetchval(observer, "SELECT count(*) FROM jobs") == 1
    finally:
        for c in [holder, observer, *racers]:
            await c.close()


async def test_key_is_free_again_when_the_holder_rolls_back(database_url: str) -> None:
    holder = await connect(database_url)
    observer = await connect(database_url)
    racers = [await connect(database_url) for _ in range(4)]
    try:
        async with holder.transaction():
            await QUEUE.enqueue(holder, NewJob("pay", idempotency_key="k"))
            tasks = [
                asyncio.create_task(QUEUE.enqueue(c, NewJob("pay", idempotency_key="k")))
                for c in racers
            ]
            for racer in racers:
                await wait_until_blocked_on_lock(observer, racer.info.backend_pid)
            raise psycopg.Rollback
        results = await asyncio.gather(*tasks)
        assert sum(r.created for r in results) == 1
        assert len({r.job_id for r in results}) == 1
        assert await fetchval(observer, "SELECT count(*) FROM jobs") == 1
    finally:
        for c in [holder, observer, *racers]:
            await c.close()


# --- claim races -------------------------------------------------------------------------


@pytest.mark.slow
async def test_eight_claimers_drain_ten_thousand_jobs_each_claimed_once(
    database_url: str,
) -> None:
    total = 10_000
    async with await connect(database_url) as conn:
        for start in range(0, total, 2_000):
            await QUEUE.enqueue_many(
                conn, [NewJob("n", {"i": i}) for i in range(start, start + 2_000)]
            )
        expected = {r[0] for r in await (await conn.execute("SELECT id FROM jobs")).fetchall()}

    claims: list[list[int]] = [[] for _ in range(8)]

    async def claimer(n: int) -> None:
        owner = f"worker-{n}"
        async with await connect(database_url) as conn:
            while jobs := await QUEUE.claim(conn, owner, 10):
                claims[n] += [j.id for j in jobs]
                assert await QUEUE.complete(conn, owner, [j.lease for j in jobs]) == []

    await asyncio.gather(*(claimer(n) for n in range(8)))
    claimed = [job_id for per_claimer in claims for job_id in per_claimer]
    assert len(claimed) == total
    assert set(claimed) == expected
    assert sum(1 for per_claimer in claims if per_claimer) > 1, "claimers did not overlap"
    async with await connect(database_url) as conn:
        assert await fetchval(conn, "SELECT count(*) FROM jobs") == 0


# --- fencing -----------------------------------------------------------------------------


async def test_stale_holder_is_fenced_after_rescue_and_reclaim(
    pool: AsyncConnectionPool[Any],
) -> None:
    async with pool.connection() as conn:
        await QUEUE.enqueue(conn, NewJob("fenced"), now=at(0))
        (a_job,) = await QUEUE.claim(conn, "worker-a", 1, now=at(0))
        report = await QUEUE.rescue_expired(conn, now=at(31))
        assert report.requeued == [a_job.id]
        (b_job,) = await QUEUE.claim(conn, "worker-b", 1, now=at(31))
        assert b_job.id == a_job.id
        assert b_job.attempt == a_job.attempt + 1

        assert await QUEUE.heartbeat(conn, "worker-a", [a_job.lease], now=at(32)) == [a_job.lease]
        assert await QUEUE.complete(conn, "worker-a", [a_job.lease]) == [a_job.lease]
        assert (await QUEUE.retry(conn, "worker-a", a_job.lease, "boom")).lost
        assert (await QUEUE.fail(conn, "worker-a", a_job.lease, "boom")).lost
        # The same owner at a stale attempt is fenced too (a worker that re-claimed its job).
        assert await QUEUE.complete(conn, "worker-b", [a_job.lease]) == [a_job.lease]
        row = await (
            await conn.execute("SELECT lease_owner, attempt, state::text FROM jobs")
        ).fetchone()
        assert row == ("worker-b", 2, "running")

        assert await QUEUE.heartbeat(conn, "worker-b", [b_job.lease], now=at(40)) == []
        assert await QUEUE.complete(conn, "worker-b", [b_job.lease]) == []
        assert await fetchval(conn, "SELECT count(*) FROM jobs") == 0


async def test_heartbeat_renews_all_leases_in_one_statement(
    pool: AsyncConnectionPool[Any],
) -> None:
    async with pool.connection() as conn:
        await QUEUE.enqueue_many(conn, [NewJob("j") for _ in range(3)], now=at(0))
        jobs = await QUEUE.claim(conn, "w", 3, now=at(0))
        assert await QUEUE.heartbeat(conn, "w", [j.lease for j in jobs], now=at(20)) == []
        assert (await QUEUE.rescue_expired(conn, now=at(45))).total == 0
        expiries = await (
            await conn.execute("SELECT DISTINCT lease_expires_at FROM jobs")
        ).fetchall()
        assert expiries == [(at(50),)]
        assert (await QUEUE.rescue_expired(conn, now=at(51))).requeued == sorted(j.id for j in jobs)


# --- retry, failure, dead jobs -------------------------------------------------------------


async def test_retry_requeues_with_backoff_until_attempts_are_spent(
    pool: AsyncConnectionPool[Any],
) -> None:
    async with pool.connection() as conn:
        await QUEUE.enqueue(conn, NewJob("flaky", {"x": 1}, max_attempts=2), now=at(0))
        (job,) = await QUEUE.claim(conn, "w", 1, now=at(0))
        outcome = await QUEUE.retry(
            conn, "w", job.lease, "first failure", delay_seconds=10, now=at(1)
        )
        assert outcome.requeued
        assert not outcome.dead
        row = await (
            await conn.execute("SELECT state::text, run_at, last_error, lease_owner FROM jobs")
        ).fetchone()
        assert row == ("queued", at(11), "first failure", None)
        assert await QUEUE.claim(conn, "w", 1, now=at(10)) == []
        (again,) = await QUEUE.claim(conn, "w", 1, now=at(11))
        assert again.attempt == 2

        final = await QUEUE.retry(conn, "w", again.lease, "second failure", now=at(12))
        assert final.dead
        assert await fetchval(conn, "SELECT count(*) FROM jobs") == 0
        dead = await (
            await conn.execute(
                "SELECT id, kind, payload, attempt, last_error, last_owner, died_at FROM dead_jobs"
            )
        ).fetchone()
        assert dead == (job.id, "flaky", {"x": 1}, 2, "second failure", "w", at(12))


async def test_fail_buries_at_once(pool: AsyncConnectionPool[Any]) -> None:
    async with pool.connection() as conn:
        await QUEUE.enqueue(conn, NewJob("bad", max_attempts=5))
        (job,) = await QUEUE.claim(conn, "w", 1)
        outcome = await QUEUE.fail(conn, "w", job.lease, "payload does not parse")
        assert outcome.dead
        assert await fetchval(conn, "SELECT count(*) FROM jobs") == 0
        assert await fetchval(conn, "SELECT last_error FROM dead_jobs") == "payload does not parse"


async def test_retry_uses_the_policy_backoff(pool: AsyncConnectionPool[Any]) -> None:
    async with pool.connection() as conn:
        await QUEUE.enqueue(conn, NewJob("flaky", max_attempts=5), now=at(0))
        (job,) = await QUEUE.claim(conn, "w", 1, now=at(0))
        await QUEUE.retry(conn, "w", job.lease, "e", now=at(0))
        run_at = await fetchval(conn, "SELECT run_at FROM jobs")
    # Attempt 1 with base 1 s waits between 0.5 s and 1 s.
    assert at(0.5) <= run_at <= at(1)


# --- crash recovery ----------------------------------------------------------------------


async def test_rescue_pass_handles_each_row_a_dead_worker_leaves(
    pool: AsyncConnectionPool[Any],
) -> None:
    """Seed the rows a SIGKILLed worker leaves behind, run one pass, check every row."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            """
            INSERT INTO jobs (kind, state, attempt, max_attempts, lease_owner, lease_expires_at,
                              run_at)
            VALUES ('expired-with-attempts-left', 'running', 1, 3, 'dead-worker', %(past)s, %(t)s),
                   ('expired-on-last-attempt', 'running', 3, 3, 'dead-worker', %(past)s, %(t)s),
                   ('lease-still-valid', 'running', 1, 3, 'live-worker', %(future)s, %(t)s),
                   ('queued', 'queued', 0, 3, NULL, NULL, %(t)s)
            RETURNING kind, id
            """,
            {"t": at(100), "past": at(99), "future": at(105)},
        )
        ids = dict(await cur.fetchall())
        report = await QUEUE.rescue_expired(conn, now=at(100))
        assert report.requeued == [ids["expired-with-attempts-left"]]
        assert report.dead == [ids["expired-on-last-attempt"]]

        rows = await (
            await conn.execute(
                "SELECT kind, state::text, lease_owner, attempt, run_at, last_error FROM jobs"
                " ORDER BY id"
            )
        ).fetchall()
        assert rows == [
            (
                "expired-with-attempts-left",
                "queued",
                None,
                1,
                at(100),
                "lease expired: worker dead-worker presumed dead",
            ),
            ("lease-still-valid", "running", "live-worker", 1, at(100), None),
            ("queued", "queued", None, 0, at(100), None),
        ]
        dead = await (
            await conn.execute("SELECT kind, last_owner, last_error FROM dead_jobs")
        ).fetchall()
        assert dead == [
            (
                "expired-on-last-attempt",
                "dead-worker",
                "lease expired on the last attempt: worker dead-worker presumed dead",
            )
        ]
        assert (await QUEUE.rescue_expired(conn, now=at(100))).total == 0


# --- the concurrency gate ------------------------------------------------------------------


async def test_saturated_project_does_not_block_another_project(
    pool: AsyncConnectionPool[Any],
) -> None:
    async with pool.connection() as conn:
        busy = await create_project(conn, "busy", concurrency_limit=1)
        other = await create_project(conn, "other")
        # The busy project's jobs come first in claim order and far outnumber the batch.
        await QUEUE.enqueue_many(
            conn, [NewJob("b", project_id=busy, run_at=at(0)) for _ in range(200)]
        )
        await QUEUE.enqueue_many(
            conn, [NewJob("o", project_id=other, run_at=at(1)) for _ in range(20)]
        )
        first = await QUEUE.claim(conn, "w", 10, now=at(2))
        assert [j.project_id for j in first] == [busy] + [other] * 9
        second = await QUEUE.claim(conn, "w", 10, now=at(2))
        assert [j.project_id for j in second] == [other] * 10
        # The freed slot is reused by the very next claim.
        busy_job = first[0]
        assert await QUEUE.complete(conn, "w", [busy_job.lease]) == []
        third = await QUEUE.claim(conn, "w", 10, now=at(2))
        assert [j.project_id for j in third] == [busy, other]


async def test_gate_counts_running_jobs_only_after_taking_the_project_lock(
    database_url: str,
) -> None:
    """A claimer that waits for a project's gate must see what the previous holder
    committed: the holder here marks a job running, the waiter then admits nothing."""
    setup = await connect(database_url)
    holder = await connect(database_url)
    waiter = await connect(database_url)
    try:
        project = await create_project(setup, "p", concurrency_limit=1)
        (ready,) = await QUEUE.enqueue_many(setup, [NewJob("ready", project_id=project)])
        # Not yet due, so not among the waiter's (row-locked) candidates.
        (later,) = await QUEUE.enqueue_many(
            setup, [NewJob("later", project_id=project, run_at=at(0))]
        )
        async with holder.transaction():
            await holder.execute(
                "SELECT pg_advisory_xact_lock(sluice_project_gate_key(%s))", (project,)
            )
            claim = asyncio.create_task(QUEUE.claim(waiter, "waiter", 5))
            await wait_until_blocked_on_lock(setup, waiter.info.backend_pid)
            await holder.execute(
                "UPDATE jobs SET state = 'running', attempt = 1, lease_owner = 'holder',"
                " lease_expires_at = now() + '30s'::interval"
                " WHERE id = %s",
                (later.job_id,),
            )
        assert await claim == []
        assert await fetchval(setup, "SELECT count(*) FROM jobs WHERE state = 'running'") == 1
        assert (
            await fetchval(setup, "SELECT state::text FROM jobs WHERE id = %s", (ready.job_id,))
            == "queued"
        )
    finally:
        for c in (setup, holder, waiter):
            await c.close()


@pytest.mark.slow
async def test_concurrency_limits_never_overshoot_under_eight_claimers(
    database_url: str,
) -> None:
    limits = {"one": 1, "three": 3, "ten": 10, "unlimited": None}
    per_project = 600
    async with await connect(database_url) as conn:
        projects = {name: await create_project(conn, name, limit) for name, limit in limits.items()}
        jobs = [
            NewJob("work", project_id=pid, priority=i % 3)
            for i in range(per_project)
            for pid in projects.values()
        ]
        await QUEUE.enqueue_many(conn, jobs)

    done = asyncio.Event()
    peaks: dict[int, int] = dict.fromkeys(projects.values(), 0)
    probes = 0
    unlimited_finished_at: list[float] = []
    limited_finished_at: list[float] = []
    loop = asyncio.get_running_loop()

    async def probe() -> None:
        nonlocal probes
        async with await connect(database_url) as conn:
            while not done.is_set():
                cur = await conn.execute(
                    "SELECT project_id, count(*) FROM jobs WHERE state = 'running'"
                    " GROUP BY project_id"
                )
                for project_id, running in await cur.fetchall():
                    peaks[project_id] = max(peaks[project_id], running)
                probes += 1

    async def claimer(n: int) -> None:
        owner = f"claimer-{n}"
        async with await connect(database_url) as conn:
            while jobs := await QUEUE.claim(conn, owner, 4):
                await asyncio.sleep(0)  # let the probe and the other claimers interleave
                assert await QUEUE.complete(conn, owner, [j.lease for j in jobs]) == []
                for j in jobs:
                    finished = (
                        unlimited_finished_at
                        if j.project_id == projects["unlimited"]
                        else limited_finished_at
                    )
                    finished.append(loop.time())

    probe_task = asyncio.create_task(probe())
    await asyncio.gather(*(claimer(n) for n in range(8)))
    done.set()
    await probe_task

    assert probes > 50, "the probe did not observe the run"
    for name, limit in limits.items():
        if limit is not None:
            assert peaks[projects[name]] <= limit, f"project {name} overshot: {peaks}"
    assert peaks[projects["ten"]] > 3, "the gate throttled more than the limit asks"
    assert len(unlimited_finished_at) == per_project
    # The unlimited project is not held back by the throttled ones: it finishes first.
    assert max(unlimited_finished_at) < max(limited_finished_at)
    async with await connect(database_url) as conn:
        assert await fetchval(conn, "SELECT count(*) FROM jobs") == 0


async def test_lease_write_for_unknown_job_reports_lost(pool: AsyncConnectionPool[Any]) -> None:
    async with pool.connection() as conn:
        assert await QUEUE.complete(conn, "w", [Lease(999, 1)]) == [Lease(999, 1)]
        assert (await QUEUE.retry(conn, "w", Lease(999, 1), "e")).lost
