"""The run store against real Postgres, with seeded rows and injected time.

As River tests its rescuer: put in the rows a webhook, a worker or a dead worker leaves
behind, run one statement (or one pass) at a chosen instant, and assert each row. Nothing
here waits for time to pass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import pytest
from psycopg import AsyncConnection

from app.flows import control, replays, runs
from app.flows.control import FlowTarget, RunBudget
from app.flows.model import Reply, RunStatus, StepRecord, StepStatus, Writes
from app.jobs import Job, Queue
from tests.e2e.flow_helpers import deploy, new_project
from tests.integration.helpers import T0, at, connect, fetchval

BUDGET = RunBudget(timeout_seconds=600, max_attempts=7)
QUEUE = Queue(lease_seconds=30)
WORKER = "worker-1"
TRIGGER: dict[str, Any] = {"body": {}, "headers": {}, "query": {}}

ONE_WAIT: dict[str, Any] = {"name": "one-wait", "steps": [{"id": "w", "type": "wait_for_webhook"}]}
CALLER: dict[str, Any] = {
    "name": "caller",
    "steps": [{"id": "call", "type": "call_flow", "flow": "one-wait"}],
}


@dataclass
class Store:
    conn: AsyncConnection[Any]
    project_id: int
    waiting: FlowTarget
    caller: FlowTarget

    async def run(self, target: FlowTarget | None = None, **fields: Any) -> UUID:
        async with self.conn.transaction():
            return await control.create_run(
                self.conn, target or self.waiting, TRIGGER, BUDGET, now=at(0), **fields
            )

    async def begin(self, run_id: UUID, *, now: datetime = T0, owner: str = WORKER) -> Job:
        """What an execution does first: claim the run's job and start the run."""
        jobs = await QUEUE.claim(self.conn, owner, 10, now=now)
        (job,) = [j for j in jobs if j.run_id == run_id]
        assert await runs.start_run(self.conn, run_id, now=now) is not None
        return job

    async def row(self, run_id: UUID) -> dict[str, Any]:
        cur = await self.conn.execute(
            "SELECT status, error, started_at, finished_at, deadline_at, paused_at,"
            " timeout_remaining_seconds, pause_expires_at FROM flow_runs WHERE id = %s",
            (run_id,),
        )
        row = await cur.fetchone()
        assert row is not None
        names = [column.name for column in cur.description or ()]
        return dict(zip(names, row, strict=True))

    async def jobs(self, run_id: UUID) -> list[tuple[Any, ...]]:
        cur = await self.conn.execute(
            "SELECT state::text, run_at, max_attempts FROM jobs WHERE run_id = %s ORDER BY id",
            (run_id,),
        )
        return await cur.fetchall()

    async def waiting_parent(self, *, now: datetime) -> tuple[UUID, UUID]:
        """A parent paused at `now` on its call_flow step, and the child it waits for."""
        parent = await self.run(self.caller)
        parent_job = await self.begin(parent)
        async with self.conn.transaction():
            child = await control.create_run(
                self.conn,
                self.waiting,
                TRIGGER,
                BUDGET,
                parent_run_id=parent,
                parent_step_key="call",
                now=now,
            )
        await self.pause(parent, parent_job, "call", now=now, kind="subflow", child_run_id=child)
        return parent, child

    async def pause(
        self, run_id: UUID, job: Job, key: str, *, now: datetime, **waiting: Any
    ) -> None:
        """What an execution commits when it pauses on `key`."""
        async with self.conn.transaction():
            assert await runs.status(self.conn, run_id, lock=True) is RunStatus.RUNNING
            await runs.lock_waitpoint(self.conn, run_id, key, now=now, **waiting)
            assert await QUEUE.complete(self.conn, WORKER, [job.lease]) == []
            await runs.record(self.conn, run_id, Writes((paused(key),)))
            assert await runs.pause_run(self.conn, run_id, expires=True, ttl_seconds=3600, now=now)


def paused(key: str) -> StepRecord:
    return StepRecord(key=key, step_id=key, type="wait_for_webhook", status=StepStatus.PAUSED)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    async with await connect(database_url) as conn:
        project_id, _key = await new_project(conn, "store")
        await deploy(conn, project_id, ONE_WAIT)
        await deploy(conn, project_id, CALLER)
        waiting = await control.find_flow_by_name(conn, project_id, "one-wait")
        caller = await control.find_flow_by_name(conn, project_id, "caller")
        assert waiting is not None
        assert caller is not None
        yield Store(conn, project_id, waiting, caller)


# --- a run's job -------------------------------------------------------------------------------


async def test_a_new_run_comes_with_its_job_whoever_inserts_it(store: Store) -> None:
    run_id = await store.run()
    cur = await store.conn.execute(
        "SELECT kind, state::text, run_at, max_attempts, idempotency_key, payload"
        " FROM jobs WHERE run_id = %s",
        (run_id,),
    )
    assert await cur.fetchall() == [
        ("execute_run", "queued", at(0), 7, f"run:{run_id}", {"run_id": str(run_id)})
    ]
    # A row inserted by hand (no Python in the way) gets its job from the schema too.
    inserted = await fetchval(
        store.conn,
        "INSERT INTO flow_runs (project_id, flow_id, flow_version_id, version, trigger,"
        " resume_secret) SELECT project_id, flow_id, flow_version_id, version, trigger,"
        " resume_secret FROM flow_runs WHERE id = %s RETURNING id",
        (run_id,),
    )
    assert [job[0] for job in await store.jobs(inserted)] == ["queued"]


async def test_a_continued_run_keeps_its_configured_attempts(store: Store) -> None:
    # Resumed by its resume URL.
    resumed = await store.run()
    job = await store.begin(resumed)
    assert job.max_attempts == 7
    await store.pause(resumed, job, "w", now=at(1), kind="webhook")
    async with store.conn.transaction():
        assert await control.complete_waitpoint(store.conn, resumed, "w", "webhook", {}, now=at(2))
    assert await store.jobs(resumed) == [("queued", at(2), 7)]

    # Resumed by its child's end.
    parent, child = await store.waiting_parent(now=at(3))
    async with store.conn.transaction():
        assert await control.cancel(store.conn, store.project_id, child, now=at(4))
    assert await store.jobs(parent) == [("queued", at(4), 7)]

    # Retried after it failed, under today's setting.
    failed = await store.run()
    failed_job = await store.begin(failed)
    finished = await runs.finish_execution(
        store.conn,
        failed_job.lease,
        WORKER,
        run_id=failed,
        status=RunStatus.FAILED,
        output=None,
        error="boom",
        writes=Writes(),
        now=at(5),
    )
    assert finished.held
    async with store.conn.transaction():
        retried = await replays.retry(
            store.conn, store.project_id, failed, RunBudget(600, 9), now=at(6)
        )
        assert retried.retried
    assert await store.jobs(failed) == [("queued", at(6), 9)]


# --- the active-time budget ----------------------------------------------------------------


async def test_a_pause_keeps_what_is_left_of_the_budget_and_a_start_resumes_it(
    store: Store,
) -> None:
    run_id = await store.run()
    assert (await store.row(run_id))["deadline_at"] == at(600)
    (job,) = await QUEUE.claim(store.conn, WORKER, 1, now=at(10))
    loaded = await runs.start_run(store.conn, run_id, now=at(10))
    assert loaded is not None
    assert (loaded.deadline_at, loaded.db_now) == (at(600), at(10))

    await store.pause(run_id, job, "w", now=at(100), kind="webhook")
    row = await store.row(run_id)
    assert row["status"] == "PAUSED"
    assert (row["deadline_at"], row["timeout_remaining_seconds"]) == (None, 500)
    assert (row["paused_at"], row["pause_expires_at"]) == (at(100), at(3700))

    assert await runs.start_run(store.conn, run_id, now=at(1000)) is not None
    row = await store.row(run_id)
    assert (row["status"], row["started_at"], row["deadline_at"]) == ("RUNNING", at(10), at(1500))
    assert (row["paused_at"], row["pause_expires_at"], row["timeout_remaining_seconds"]) == (
        None,
        None,
        None,
    )


async def test_a_final_run_does_not_start_again(store: Store) -> None:
    run_id = await store.run()
    async with store.conn.transaction():
        assert await control.cancel(store.conn, store.project_id, run_id, now=at(1))
    assert await runs.start_run(store.conn, run_id, now=at(2)) is None
    assert (await store.row(run_id))["status"] == "CANCELED"


async def test_a_run_past_its_deadline_times_out_with_its_children(store: Store) -> None:
    parent = await store.run(store.caller)
    await store.begin(parent)
    async with store.conn.transaction():
        child = await control.create_run(
            store.conn, store.waiting, TRIGGER, BUDGET, parent_run_id=parent, now=at(1)
        )

    assert await runs.expire_runs(store.conn, now=at(600)) == []
    expired = await runs.expire_runs(store.conn, now=at(601))

    assert expired == [runs.Expired(parent, RunStatus.RUNNING)]
    parent_row, child_row = await store.row(parent), await store.row(child)
    assert (parent_row["status"], parent_row["finished_at"]) == ("TIMEOUT", at(601))
    assert parent_row["error"] == "ran longer than SLUICE_RUN_TIMEOUT_SECONDS"
    assert (child_row["status"], child_row["finished_at"]) == ("TIMEOUT", at(601))
    assert child_row["error"] == f"parent run {parent} ended: TIMEOUT"
    assert await store.jobs(child) == []  # its queued job went with it


async def test_a_run_paused_past_the_ttl_times_out_but_not_before(store: Store) -> None:
    run_id = await store.run()
    job = await store.begin(run_id)
    await store.pause(run_id, job, "w", now=at(100), kind="webhook")

    assert await runs.expire_runs(store.conn, now=at(3700)) == []
    assert await runs.expire_runs(store.conn, now=at(3701)) == [
        runs.Expired(run_id, RunStatus.PAUSED)
    ]
    row = await store.row(run_id)
    assert (row["status"], row["error"]) == ("TIMEOUT", "paused longer than SLUICE_PAUSED_RUN_TTL")
    pending = await fetchval(
        store.conn, "SELECT count(*) FROM waitpoints WHERE run_id = %s", (run_id,)
    )
    assert pending == 0


# --- the fence ------------------------------------------------------------------------------


async def test_a_worker_that_lost_its_lease_writes_nothing(store: Store) -> None:
    run_id = await store.run()
    stale = await store.begin(run_id, owner="presumed-dead")
    rescued = await QUEUE.rescue_expired(store.conn, now=at(31))
    assert rescued.requeued == [stale.id]
    fresh = await store.begin(run_id, now=at(31), owner="successor")
    record = StepRecord(key="w", step_id="w", type="wait_for_webhook", status=StepStatus.FAILED)

    progress = await runs.save_progress(
        store.conn,
        stale.lease,
        "presumed-dead",
        lease_seconds=30,
        run_id=run_id,
        writes=Writes((record,)),
        now=at(32),
    )
    finished = await runs.finish_execution(
        store.conn,
        stale.lease,
        "presumed-dead",
        run_id=run_id,
        status=RunStatus.FAILED,
        output=None,
        error="stale",
        writes=Writes((record,)),
        now=at(32),
    )

    assert progress == runs.Progress(held=False, status=RunStatus.RUNNING)
    assert not finished.held
    assert await fetchval(store.conn, "SELECT count(*) FROM step_runs") == 0
    assert (await store.row(run_id))["status"] == "RUNNING"
    ended = await runs.finish_execution(
        store.conn,
        fresh.lease,
        "successor",
        run_id=run_id,
        status=RunStatus.SUCCEEDED,
        output={"by": "successor"},
        error=None,
        writes=Writes(),
        now=at(33),
    )
    assert ended.held
    assert ended.reply == Reply(RunStatus.SUCCEEDED, None, {"by": "successor"}, None)
    assert (await store.row(run_id))["finished_at"] == at(33)


async def test_save_progress_renews_the_lease_and_records_the_reply(store: Store) -> None:
    run_id = await store.run()
    job = await store.begin(run_id)
    reply = {"status": 201, "headers": {}, "body": "early"}
    progress = await runs.save_progress(
        store.conn,
        job.lease,
        WORKER,
        lease_seconds=30,
        run_id=run_id,
        writes=Writes(response=reply, responded=True),
        now=at(20),
    )
    assert progress == runs.Progress(held=True, status=RunStatus.RUNNING)
    expires = await fetchval(
        store.conn, "SELECT lease_expires_at FROM jobs WHERE id = %s", (job.id,)
    )
    assert expires == at(50)
    assert await control.reply(store.conn, run_id) == Reply(RunStatus.RUNNING, reply, None, None)


# --- waitpoints and the triggers of a run's end ---------------------------------------------


async def test_a_waitpoint_is_due_at_its_resume_time(store: Store) -> None:
    run_id = await store.run()
    async with store.conn.transaction():
        early = await runs.lock_waitpoint(
            store.conn, run_id, "w", kind="delay", resume_in_seconds=30, now=at(0)
        )
    async with store.conn.transaction():
        late = await runs.lock_waitpoint(
            store.conn, run_id, "w", kind="delay", resume_in_seconds=99, now=at(31)
        )
    assert (early.resume_at, early.due) == (at(30), False)
    assert (late.resume_at, late.due) == (at(30), True)  # created once, at the first pause


async def test_a_childs_end_resumes_its_waiting_parent_at_that_instant(store: Store) -> None:
    parent, child = await store.waiting_parent(now=at(1))
    child_job = await store.begin(child, now=at(2))

    finished = await runs.finish_execution(
        store.conn,
        child_job.lease,
        WORKER,
        run_id=child,
        status=RunStatus.SUCCEEDED,
        output={"n": 1},
        error=None,
        writes=Writes(),
        now=at(50),
    )

    assert finished.held
    cur = await store.conn.execute(
        "SELECT state, completed_at, payload FROM waitpoints WHERE run_id = %s", (parent,)
    )
    assert await cur.fetchall() == [
        (
            "completed",
            at(50),
            {
                "run_id": str(child),
                "status": "SUCCEEDED",
                "output": {"n": 1},
                "response": None,
                "error": None,
            },
        )
    ]
    assert await store.jobs(parent) == [("queued", at(50), 7)]


async def test_a_cancel_ends_the_runs_children_and_clears_its_waits(store: Store) -> None:
    parent, child = await store.waiting_parent(now=at(1))

    async with store.conn.transaction():
        assert await control.cancel(store.conn, store.project_id, parent, now=at(9))
        assert not await control.cancel(store.conn, store.project_id, parent, now=at(10))

    for run_id in (parent, child):
        row = await store.row(run_id)
        assert (row["status"], row["finished_at"]) == ("CANCELED", at(9))
        assert await store.jobs(run_id) == []
    # The child's end completed the parent's wait on the way; nothing waits any more.
    assert (
        await fetchval(store.conn, "SELECT count(*) FROM waitpoints WHERE state = 'pending'") == 0
    )


async def test_a_retry_gives_a_fresh_budget_and_forgets_the_unsuccessful_steps_waits(
    store: Store,
) -> None:
    run_id = await store.run()
    job = await store.begin(run_id)
    async with store.conn.transaction():
        for key, state in (("done", "completed"), ("timed_out", "completed")):
            await runs.lock_waitpoint(store.conn, run_id, key, kind="webhook", now=at(1))
            await store.conn.execute(
                "UPDATE waitpoints SET state = %s WHERE run_id = %s AND step_key = %s",
                (state, run_id, key),
            )
    done = StepRecord(key="done", step_id="done", type="wait", status=StepStatus.SUCCEEDED)
    failed = StepRecord(key="timed_out", step_id="t", type="wait", status=StepStatus.TIMEOUT)
    finished = await runs.finish_execution(
        store.conn,
        job.lease,
        WORKER,
        run_id=run_id,
        status=RunStatus.TIMEOUT,
        output=None,
        error="step 'timed_out' failed",
        writes=Writes((done, failed)),
        now=at(2),
    )
    assert finished.held
    async with store.conn.transaction():
        first = await replays.retry(store.conn, store.project_id, run_id, BUDGET, now=at(5000))
        again = await replays.retry(store.conn, store.project_id, run_id, BUDGET, now=at(5001))
        assert (first.retried, again.retried) == (True, False)

    row = await store.row(run_id)
    assert (row["status"], row["error"], row["finished_at"]) == ("QUEUED", None, None)
    assert row["deadline_at"] == at(5600)
    assert await store.jobs(run_id) == [("queued", at(5000), 7)]
    cur = await store.conn.execute("SELECT step_key FROM waitpoints WHERE run_id = %s", (run_id,))
    assert await cur.fetchall() == [("done",)]


async def test_a_run_whose_job_dies_fails_at_the_instant_it_died(store: Store) -> None:
    run_id = await store.run()
    job = await store.begin(run_id)
    outcome = await QUEUE.fail(store.conn, WORKER, job.lease, "the sandbox broke", now=at(40))
    assert outcome.dead
    row = await store.row(run_id)
    assert (row["status"], row["finished_at"]) == ("FAILED", at(40))
    assert row["error"] == "the run could not be executed: the sandbox broke"
