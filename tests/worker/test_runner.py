"""The worker loop against real Postgres: lifecycle, bad jobs, a stop racing a claim."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pydantic
import pytest

from app.jobs import Job, NewJob, Queue
from tests.integration.helpers import connect, create_project, eventually, fetchval
from tests.worker.running import enqueue, running
from worker.executor import PermanentJobError
from worker.runner import Worker


async def echo(job: Job) -> Any:
    return job.payload


class Greeting(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    who: str


async def greet(job: Job) -> str:
    return f"hello {Greeting.model_validate(job.payload).who}"


async def boom(job: Job) -> None:
    raise ValueError(f"boom on attempt {job.attempt}")


async def refuse(job: Job) -> None:
    raise PermanentJobError("this job can never work")


def settled(
    worker: Worker, *, completed: int = 0, failed: int = 0
) -> Callable[[], Awaitable[bool]]:
    """Whether the worker has recorded these outcomes (its counters follow the commit)."""

    async def check() -> bool:
        return worker.stats.completed >= completed and worker.stats.failed >= failed

    return check


def queue_empty(url: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        async with await connect(url) as conn:
            return bool(await fetchval(conn, "SELECT count(*) = 0 FROM jobs"))

    return check


async def test_jobs_run_complete_and_forward_their_results(database_url: str) -> None:
    ids = await enqueue(database_url, [NewJob("echo", {"n": i}) for i in range(20)])
    async with running(database_url, {"echo": echo}) as (worker, _stop, _task):
        await eventually(queue_empty(database_url), within=30)
    assert worker.stats.completed == 20
    assert worker.stats.claimed == 20
    assert {job_id: worker.stats.outcomes[job_id].result for job_id in ids} == {
        job_id: {"n": i} for i, job_id in enumerate(ids)
    }


async def test_errors_are_retried_then_reported_dead(database_url: str) -> None:
    (job_id,) = await enqueue(database_url, [NewJob("boom")])
    async with running(database_url, {"boom": boom}) as (worker, _stop, _task):
        await eventually(queue_empty(database_url), within=30)
    assert worker.stats.retried == 1
    assert worker.stats.failed == 1
    async with await connect(database_url) as conn:
        error = await fetchval(conn, "SELECT last_error FROM dead_jobs WHERE id = %s", (job_id,))
    assert "ValueError: boom on attempt 2" in error
    assert "Traceback" in error


async def test_idle_worker_polls_and_wakes_on_notify(database_url: str) -> None:
    async with running(database_url, {"echo": echo}, poll_interval_seconds=60) as (
        worker,
        _stop,
        _task,
    ):

        async def idle() -> bool:
            return worker.stats.null_polls >= 1

        await eventually(idle)
        polls = worker.stats.null_polls
        # The poll interval is a minute: only the NOTIFY can make this quick.
        async with await connect(database_url) as conn:
            await Queue(waker=None).enqueue(conn, NewJob("echo", 1))
            await conn.execute("NOTIFY sluice_jobs")
        await eventually(queue_empty(database_url), within=10)
        await eventually(settled(worker, completed=1))
        assert worker.stats.completed == 1
        assert worker.stats.null_polls <= polls + 2


@pytest.mark.parametrize(
    ("job", "error"),
    [
        (NewJob("no-such-kind", {}), "unknown job kind 'no-such-kind' (this worker handles:"),
        (NewJob("greet", "a string"), "invalid payload for job kind 'greet'"),
        (NewJob("greet", 42), "invalid payload for job kind 'greet'"),
        (NewJob("greet", None), "invalid payload for job kind 'greet'"),
        (NewJob("greet", {"who": 1}), "who: Input should be a valid string"),
        (NewJob("greet", {"who": "x", "extra": 1}), "extra: Extra inputs are not permitted"),
        (NewJob("refuse", {}), "this job can never work"),
    ],
)
async def test_each_kind_of_bad_job_ends_dead_with_a_clear_error(
    database_url: str, job: NewJob, error: str
) -> None:
    (job_id,) = await enqueue(database_url, [job])
    async with running(database_url, {"greet": greet, "refuse": refuse}) as (worker, _s, _t):
        await eventually(queue_empty(database_url), within=30)
        await eventually(settled(worker, failed=1))
        assert worker.stats.failed == 1
        assert worker.stats.retried == 0
    async with await connect(database_url) as conn:
        last_error = await fetchval(
            conn, "SELECT last_error FROM dead_jobs WHERE id = %s", (job_id,)
        )
    assert error in last_error


async def test_mixed_good_and_bad_jobs_all_end_and_the_worker_keeps_going(
    database_url: str,
) -> None:
    bad = [
        NewJob("unknown"),
        NewJob("greet", "text"),
        NewJob("greet", None),
        NewJob("greet", [1, 2]),
        NewJob("refuse"),
    ]
    jobs = [
        NewJob("greet", {"who": str(i)}) if i % 2 else bad[i // 2 % len(bad)] for i in range(40)
    ]
    await enqueue(database_url, jobs)
    async with running(database_url, {"greet": greet, "refuse": refuse}) as (worker, _s, _t):
        await eventually(queue_empty(database_url), within=30)
        await eventually(settled(worker, completed=20, failed=20))
        assert worker.stats.completed == 20
        assert worker.stats.failed == 20
        await enqueue(database_url, [NewJob("greet", {"who": "after"})])
        await eventually(queue_empty(database_url), within=30)
        await eventually(settled(worker, completed=21))
        assert worker.stats.completed == 21
    assert "hello after" in {o.result for o in worker.stats.outcomes.values()}


async def test_claims_never_exceed_free_slots(database_url: str) -> None:
    release = asyncio.Event()
    running_now = 0
    peak = 0

    async def hold(job: Job) -> None:
        nonlocal running_now, peak
        running_now += 1
        peak = max(peak, running_now)
        await release.wait()
        running_now -= 1

    await enqueue(database_url, [NewJob("hold") for _ in range(10)])
    async with running(database_url, {"hold": hold}, worker_concurrency=3) as (worker, _s, _t):

        async def three_held() -> bool:
            return running_now == 3

        await eventually(three_held)
        # Every slot is busy: nothing more may be claimed until one frees up.
        async with await connect(database_url) as conn:
            running_in_db = await fetchval(
                conn, "SELECT count(*) FROM jobs WHERE state = 'running'"
            )
        assert running_in_db == 3
        assert worker.stats.claimed == 3
        release.set()
        await eventually(queue_empty(database_url), within=30)
    assert peak == 3
    assert worker.stats.completed == 10


async def test_a_stop_that_races_a_claim_hands_the_jobs_back(database_url: str) -> None:
    """The claim is held inside Postgres (on the project's gate lock) while the stop comes;
    the jobs it then returns are released, not run, and the loop does not go round again."""
    executed: list[int] = []

    async def record(job: Job) -> None:
        executed.append(job.id)

    blocker = await connect(database_url)
    try:
        project = await create_project(blocker, "gated", concurrency_limit=10)
        async with running(database_url, {"record": record}) as (worker, stop, task):
            async with blocker.transaction():
                await blocker.execute(
                    "SELECT pg_advisory_xact_lock(sluice_project_gate_key(%s))", (project,)
                )
                ids = await enqueue(database_url, [NewJob("record", project_id=project)] * 3)
                await blocker.execute("NOTIFY sluice_jobs")

                async def claim_blocked() -> bool:
                    return bool(
                        await fetchval(
                            blocker,
                            "SELECT count(*) = 1 FROM pg_stat_activity"
                            " WHERE wait_event_type = 'Lock'"
                            " AND application_name = 'sluice-worker'",
                        )
                    )

                await eventually(claim_blocked)
                stop.set()
            await asyncio.wait_for(task, 30)
        assert executed == []
        assert worker.stats.released == 3
        cur = await blocker.execute("SELECT id, state::text, lease_owner FROM jobs ORDER BY id")
        assert await cur.fetchall() == [(i, "queued", None) for i in ids]
    finally:
        await blocker.close()


async def test_worker_registers_and_refreshes_last_seen(database_url: str) -> None:
    async with (
        running(database_url, {}) as (worker, _stop, _task),
        await connect(database_url) as conn,
    ):
        cur = await conn.execute(
            "SELECT host, pid, container_type, slots, last_seen FROM workers WHERE id = %s",
            (worker.id,),
        )
        row = await cur.fetchone()
        assert row is not None
        first_seen = row[4]
        assert row[1] == os.getpid()
        assert (row[2], row[3]) == ("WORKER_AND_APP", 4)

        async def refreshed() -> bool:
            seen = await fetchval(conn, "SELECT last_seen FROM workers WHERE id = %s", (worker.id,))
            return bool(seen > first_seen)

        await eventually(refreshed)
