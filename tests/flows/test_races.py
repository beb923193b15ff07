"""Pause and resume cannot race (invariant 5), and nothing accepted is lost (invariant 1).

A child run's end and its parent's pause meet at the parent's waitpoint row; whichever order
the row lock gives them, the parent is resumed exactly once. Concurrent resumes of one
waitpoint run the rest of the flow once; a resume with a wrong token changes nothing; a
cancel racing a child's end or a resume deadlocks with neither; many runs of projects with
different concurrency limits all finish within their limits, a freed slot reused at once. Races
are forced with real connections: one side holds a row lock in an open transaction, the other
is started and observed blocked in pg_stat_activity, then the lock is released.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from app.flows import control, resume, runs
from app.flows.control import FlowTarget, RunBudget
from app.flows.model import (
    RUN_EVENTS_CHANNEL,
    LoadedRun,
    RunStatus,
    StepRecord,
    StepStatus,
    Waitpoint,
    Writes,
)
from app.jobs import Job, Queue
from app.signals import Publisher, Watchers
from tests.e2e.flow_helpers import (
    Probe,
    deploy,
    new_project,
    probe_server,
    run_status,
    until_status,
)
from tests.flows.stack import FINAL, Stack, running_stack
from tests.integration.helpers import connect, eventually, fetchval, wait_until_blocked_on_lock
from worker.flow.effects import Finish, StartChild, Wait
from worker.flow.session import RunSession, Stop
from worker.services import WorkerServices

# --- a child's end against its parent's pause, at the store ----------------------------------

QUEUE = Queue()
BUDGET = RunBudget(timeout_seconds=600, max_attempts=5)
PARENT_WORKER = "worker-of-the-parent"
CHILD_WORKER = "worker-of-the-child"
KEY = "call"
ROUNDS_PER_ORDER = 67
"""Three orders, 201 rounds in all, each on a fresh parent and child in one database."""

PARENT: dict[str, Any] = {
    "name": "parent",
    "steps": [
        {"id": "call", "type": "call_flow", "flow": "child", "input": "{{ trigger.body }}"},
        {"id": "reply", "type": "respond", "body": "{{ steps.call.output }}"},
    ],
}
CHILD: dict[str, Any] = {
    "name": "child",
    "steps": [
        {"id": "reply", "type": "respond", "body": {"doubled": "{{ trigger.body.n * 2 }}"}},
    ],
}


class Order(enum.Enum):
    CHILD_ENDS_FIRST = "the child's end commits before the pause starts"
    PAUSE_HOLDS_THE_WAITPOINT = "the child's end blocks on the pause's waitpoint lock"
    CHILD_HOLDS_THE_WAITPOINT = "the pause blocks on the child's end's waitpoint lock"


@dataclass(frozen=True)
class Actor:
    """A worker of its own for the races: the services a `RunSession` writes through, on a
    pool of one connection named `name` (so a test can see it wait for a lock)."""

    name: str
    owner: str
    services: WorkerServices

    def session(self, job: Job) -> RunSession:
        assert job.run_id is not None
        return RunSession(self.services, job, job.run_id, budget=BUDGET, paused_ttl_seconds=3600)


@contextlib.asynccontextmanager
async def actor(database_url: str, name: str, owner: str) -> AsyncIterator[Actor]:
    pool = AsyncConnectionPool(
        database_url,
        min_size=1,
        max_size=1,
        kwargs={"autocommit": True, "application_name": name},
        open=False,
    )
    async with pool:
        run_events = Publisher(pool, RUN_EVENTS_CHANNEL)
        services = WorkerServices(
            pool, QUEUE, owner, run_events, Watchers(), lambda _job_id: None, Watchers()
        )
        yield Actor(name, owner, services)
        await run_events.aclose()


@dataclass(frozen=True)
class Call:
    """A parent paused on its call_flow step while the child it started runs."""

    parent: UUID
    child: UUID
    child_job: Job
    n: int


@dataclass(frozen=True)
class Family(Call):
    """A call whose parent is being executed again, holding `parent_job`."""

    parent_job: Job


def _trigger(n: int) -> dict[str, Any]:
    return {"body": {"n": n}, "headers": {}, "query": {}}


def _paused() -> StepRecord:
    return StepRecord(key=KEY, step_id=KEY, type="call_flow", status=StepStatus.PAUSED)


async def _claim(conn: AsyncConnection[Any], owner: str, run_id: UUID) -> Job:
    (job,) = await QUEUE.claim(conn, owner, 1)
    assert job.run_id == run_id
    return job


async def _call(
    conn: AsyncConnection[Any], parents: Actor, children: Actor, parent_flow: FlowTarget, n: int
) -> Call:
    """A parent that ran up to its call and started the child (pausing in that commit),
    and the child, now running."""
    async with conn.transaction():
        parent = await control.create_run(conn, parent_flow, _trigger(n), BUDGET)
    session = parents.session(await _claim(conn, parents.owner, parent))
    assert isinstance(await session.begin(), LoadedRun)
    child = uuid4()
    start = StartChild(
        key=KEY,
        flow="child",
        input={"n": n},
        child_run_id=child,
        wait=True,
        paused=_paused(),
        started=_paused(),
    )
    assert await session.start_child(parent_flow.project_id, start) is Stop.PAUSED
    child_job = await _claim(conn, children.owner, child)
    assert isinstance(await children.session(child_job).begin(), LoadedRun)
    return Call(parent, child, child_job, n)


async def _family(
    conn: AsyncConnection[Any], parents: Actor, children: Actor, parent_flow: FlowTarget, n: int
) -> Family:
    """A parent executed again while the child it started runs (a stale execution that lost
    its lease settles by continuing the run): it replays up to the call, finds the waitpoint
    still pending, and is about to pause on it again."""
    call = await _call(conn, parents, children, parent_flow, n)
    await runs.continue_run(conn, call.parent)
    parent_job = await _claim(conn, parents.owner, call.parent)
    loaded = await parents.session(parent_job).begin()
    assert isinstance(loaded, LoadedRun)
    assert loaded.waitpoints[KEY].state == "pending"
    return Family(call.parent, call.child, call.child_job, call.n, parent_job)


async def _pause(parents: Actor, family: Family) -> Waitpoint | None:
    """The parent's pause on its waitpoint: the completed waitpoint when the execution goes
    on, None when the run paused."""
    wait = Wait(key=KEY, kind="subflow", resume_in_seconds=None, paused=_paused(), expires=True)
    found = await parents.session(family.parent_job).wait(wait)
    if found is Stop.PAUSED:
        return None
    assert isinstance(found, Waitpoint), found
    return found


async def _end_child(children: Actor, call: Call) -> bool:
    """The child's last commit; the `flow_runs_finished` trigger completes the parent's
    waitpoint and schedules the parent. False when the child had ended otherwise."""
    outcome = Finish(status=RunStatus.SUCCEEDED, output={"doubled": call.n * 2})
    finished = await children.session(call.child_job).finish(outcome)
    assert isinstance(finished, runs.Finished), finished
    return finished.reply is not None


async def _blocked_or_done(
    observer: AsyncConnection[Any], who: Actor, task: asyncio.Task[Any]
) -> None:
    """Return once `who`'s backend waits for a lock, or once `task` (working through it)
    ended without waiting: then the assertions after the race show what that cost."""

    async def settled() -> bool:
        if task.done():
            return True
        waiting = await fetchval(
            observer,
            "SELECT bool_or(wait_event_type = 'Lock') FROM pg_stat_activity"
            " WHERE application_name = %s",
            (who.name,),
        )
        return bool(waiting)

    await eventually(settled)


async def _race(
    order: Order,
    family: Family,
    *,
    parents: Actor,
    children: Actor,
    observer: AsyncConnection[Any],
    holder: AsyncConnection[Any],
) -> Waitpoint | None:
    """Run the pause and the child's end through their own sessions, in `order`.

    The orders are forced with the parent's job row, which both take last: the holder
    locks it, so whichever starts first stops there holding the waitpoint, and the other
    then waits for the waitpoint; releasing the job lets them finish in that order."""
    if order is Order.CHILD_ENDS_FIRST:
        assert await _end_child(children, family)
        return await _pause(parents, family)
    async with holder.transaction():
        await holder.execute("SELECT 1 FROM jobs WHERE id = %s FOR UPDATE", (family.parent_job.id,))
        if order is Order.PAUSE_HOLDS_THE_WAITPOINT:
            pause = asyncio.create_task(_pause(parents, family))
            await _blocked_or_done(observer, parents, pause)
            end = asyncio.create_task(_end_child(children, family))
            await _blocked_or_done(observer, children, end)
        else:
            end = asyncio.create_task(_end_child(children, family))
            await _blocked_or_done(observer, children, end)
            pause = asyncio.create_task(_pause(parents, family))
            await _blocked_or_done(observer, parents, pause)
    assert await end
    return await pause


async def _live_jobs(conn: AsyncConnection[Any], run_id: UUID) -> list[tuple[Any, ...]]:
    cur = await conn.execute(
        "SELECT id, kind, state FROM jobs WHERE run_id = %s ORDER BY id", (run_id,)
    )
    return await cur.fetchall()


async def _resumed_exactly_once(
    conn: AsyncConnection[Any], family: Family, went_on: Waitpoint | None
) -> None:
    """The parent goes on once: either the pause saw the completed waitpoint and the
    execution continues on its own job, or it paused and exactly one job continues it."""
    parent, expected = family.parent, {"doubled": family.n * 2}
    jobs = await _live_jobs(conn, parent)
    if went_on is not None:
        assert went_on.payload["status"] == "SUCCEEDED"
        assert went_on.payload["output"] == expected
        # The child's end found the execution's job running: nothing queued beside it.
        assert jobs == [(family.parent_job.id, "execute_run", "running")]
        lease = family.parent_job.lease
    else:
        assert await runs.status(conn, parent) is RunStatus.PAUSED
        assert len(jobs) == 1, f"the parent paused on a completed waitpoint with jobs {jobs}"
        assert jobs[0][1:] == ("execute_run", "queued")
        job = await _claim(conn, PARENT_WORKER, parent)
        loaded = await runs.start_run(conn, parent)
        assert loaded is not None
        waitpoint = loaded.waitpoints[KEY]
        assert waitpoint.state == "completed"
        assert waitpoint.payload["output"] == expected
        lease = job.lease
    finished = await runs.finish_execution(
        conn,
        lease,
        PARENT_WORKER,
        run_id=parent,
        status=RunStatus.SUCCEEDED,
        output=expected,
        error=None,
        writes=Writes(),
    )
    assert finished.reply is not None
    cur = await conn.execute(
        "SELECT status, output FROM flow_runs WHERE id = ANY(%s)"
        " ORDER BY parent_run_id NULLS FIRST",
        ([parent, family.child],),
    )
    assert await cur.fetchall() == [("SUCCEEDED", expected), ("SUCCEEDED", expected)]
    assert await fetchval(conn, "SELECT count(*) FROM jobs") == 0


async def _flows(conn: AsyncConnection[Any]) -> tuple[int, FlowTarget, FlowTarget]:
    project_id, _key = await new_project(conn, "races")
    await deploy(conn, project_id, CHILD)
    await deploy(conn, project_id, PARENT)
    parent_flow = await control.find_flow_by_name(conn, project_id, "parent")
    child_flow = await control.find_flow_by_name(conn, project_id, "child")
    assert parent_flow is not None
    assert child_flow is not None
    return project_id, parent_flow, child_flow


@pytest.mark.parametrize("order", list(Order), ids=[o.name.lower() for o in Order])
async def test_a_child_ending_around_its_parents_pause_resumes_the_parent_exactly_once(
    database_url: str, order: Order
) -> None:
    async with (
        await connect(database_url) as setup,
        await connect(database_url) as holder,
        actor(database_url, "pausing", PARENT_WORKER) as parents,
        actor(database_url, "ending", CHILD_WORKER) as children,
    ):
        _project, parent_flow, _child_flow = await _flows(setup)
        for n in range(ROUNDS_PER_ORDER):
            family = await _family(setup, parents, children, parent_flow, n)
            went_on = await _race(
                order, family, parents=parents, children=children, observer=setup, holder=holder
            )
            if order is Order.PAUSE_HOLDS_THE_WAITPOINT:
                assert went_on is None, f"round {n}: the pause saw the child's end"
            else:
                assert went_on is not None, f"round {n}: paused on a completed waitpoint"
            await _resumed_exactly_once(setup, family, went_on)


async def test_a_parents_cancel_racing_its_childs_end_deadlocks_with_neither(
    database_url: str,
) -> None:
    observer = await connect(database_url)
    holder = await connect(database_url)
    canceling = await connect(database_url)
    async with (
        observer,
        holder,
        canceling,
        actor(database_url, "parents", PARENT_WORKER) as parents,
        actor(database_url, "ending", CHILD_WORKER) as children,
    ):
        project_id, parent_flow, _child_flow = await _flows(observer)
        call = await _call(observer, parents, children, parent_flow, 7)

        async def cancel_parent() -> bool:
            async with canceling.transaction():
                return await control.cancel(canceling, project_id, call.parent)

        # The cancel is held at the parent's waitpoint, then the child's end is held too; once
        # the waitpoint is free both must finish, whatever locks each took on its way there
        # (when a run's end took its waitpoints before its children, they deadlocked).
        async with holder.transaction():
            await holder.execute(
                "SELECT 1 FROM waitpoints WHERE run_id = %s FOR UPDATE", (call.parent,)
            )
            canceled = asyncio.create_task(cancel_parent())
            await wait_until_blocked_on_lock(observer, canceling.info.backend_pid)
            ended = asyncio.create_task(_end_child(children, call))
            await _blocked_or_done(observer, children, ended)
            assert not ended.done()
        outcomes = await asyncio.gather(canceled, ended, return_exceptions=True)

        assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
        assert await runs.status(observer, call.parent) is RunStatus.CANCELED
        assert (await runs.status(observer, call.child)).final


async def test_fifty_parents_calling_a_child_at_once_all_succeed_with_its_output(
    database_url: str,
) -> None:
    async with running_stack(database_url, worker_concurrency=8) as stack:
        await stack.deploy(CHILD)
        parent = await stack.deploy(PARENT)

        accepted = await asyncio.gather(*(stack.trigger(parent["id"], {"n": n}) for n in range(50)))

        assert {a.status_code for a in accepted} == {202}
        given = {a.json()["run_id"]: n for n, a in enumerate(accepted)}
        async with await connect(database_url) as conn:
            await eventually(lambda: _all_final(conn, 100), within=60)
            cur = await conn.execute(
                "SELECT p.id::text, p.status, p.response -> 'body', count(c.id),"
                " bool_and(c.status = 'SUCCEEDED')"
                " FROM flow_runs p LEFT JOIN flow_runs c ON c.parent_run_id = p.id"
                " WHERE p.parent_run_id IS NULL GROUP BY p.id"
            )
            parents = {row[0]: row[1:] for row in await cur.fetchall()}
            assert parents == {
                run_id: ("SUCCEEDED", {"doubled": 2 * n}, 1, True) for run_id, n in given.items()
            }
            assert await fetchval(conn, "SELECT count(*) FROM jobs") == 0
            assert await fetchval(conn, "SELECT count(*) FROM dead_jobs") == 0


async def _all_final(conn: AsyncConnection[Any], expected: int) -> bool:
    final = await fetchval(conn, "SELECT count(*) FROM flow_runs WHERE sluice_run_is_final(status)")
    return bool(final == expected)


# --- resumes -------------------------------------------------------------------------------

APPROVAL: dict[str, Any] = {
    "name": "approval",
    "steps": [
        {"id": "approve", "type": "wait_for_webhook"},
        {
            "id": "effect",
            "type": "http",
            "method": "POST",
            "url": "{{ trigger.body.effect }}",
            "body": "{{ steps.approve.output }}",
        },
        {"id": "reply", "type": "respond", "body": "{{ steps.effect.output.body }}"},
    ],
}


async def _token(database_url: str, run_id: str, key: str) -> str:
    """The resume token the run's flow would offer for `key` (in `resume_urls.<id>`)."""
    async with await connect(database_url) as conn:
        secret = await fetchval(
            conn, "SELECT resume_secret FROM flow_runs WHERE id = %s", (run_id,)
        )
    return resume.token(bytes(secret), key)


async def _paused_approval(stack: Stack, probe: Probe, effect: str) -> str:
    flow = await stack.deploy(APPROVAL)
    accepted = await stack.trigger(flow["id"], {"effect": probe.url(effect)})
    assert accepted.status_code == 202
    run_id: str = accepted.json()["run_id"]
    await stack.wait_for_status(run_id, {"PAUSED"})
    return run_id


async def test_ten_concurrent_resumes_of_one_waitpoint_run_the_rest_once(
    database_url: str,
) -> None:
    async with probe_server() as probe, running_stack(database_url) as stack:
        run_id = await _paused_approval(stack, probe, "effect")
        path = f"/resume/{run_id}/{await _token(database_url, run_id, 'approve')}"

        answers = await asyncio.gather(
            *(stack.client.post(path, json={"by": i}) for i in range(10))
        )

        codes = sorted(answer.status_code for answer in answers)
        assert codes == [202] + [409] * 9, [answer.text for answer in answers]
        (winner,) = [i for i, answer in enumerate(answers) if answer.status_code == 202]
        run = await stack.wait_for_status(run_id)
        assert run["status"] == "SUCCEEDED"
        assert probe.hits["effect"] == 1
        assert json.loads(probe.bodies["effect"][0]) == {"by": winner}


async def test_two_resumes_blocked_on_the_waitpoint_lock_run_the_rest_once(
    database_url: str,
) -> None:
    async with probe_server() as probe, running_stack(database_url) as stack:
        run_id = await _paused_approval(stack, probe, "effect")
        path = f"/resume/{run_id}/{await _token(database_url, run_id, 'approve')}"
        async with await connect(database_url) as holder, await connect(database_url) as observer:
            async with holder.transaction():
                await holder.execute(
                    "SELECT 1 FROM waitpoints WHERE run_id = %s AND step_key = 'approve'"
                    " FOR UPDATE",
                    (run_id,),
                )
                resumes = [
                    asyncio.create_task(stack.client.post(path, json={"by": i})) for i in range(2)
                ]

                async def both_blocked() -> bool:
                    return await _app_backends_waiting(observer) == 2

                await eventually(both_blocked)
            answers = await asyncio.gather(*resumes)

        assert sorted(answer.status_code for answer in answers) == [202, 409]
        assert (await stack.wait_for_status(run_id))["status"] == "SUCCEEDED"
        assert probe.hits["effect"] == 1


async def _app_backends_waiting(observer: AsyncConnection[Any]) -> int:
    return int(
        await fetchval(
            observer,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'sluice-app' AND wait_event_type = 'Lock'",
        )
    )


WAIT_WITH_TIMEOUT: dict[str, Any] = {
    "name": "wait-with-timeout",
    "steps": [{"id": "approve", "type": "wait_for_webhook", "timeout_seconds": 3600}],
}


async def _paused_with_timeout(conn: AsyncConnection[Any], worker: Actor, flow: FlowTarget) -> UUID:
    """A run paused on a wait with a timeout: the waitpoint pending and a continuation job
    queued for the timeout."""
    async with conn.transaction():
        run_id = await control.create_run(conn, flow, _trigger(0), BUDGET)
    session = worker.session(await _claim(conn, worker.owner, run_id))
    assert isinstance(await session.begin(), LoadedRun)
    paused = StepRecord(key="approve", step_id="approve", type="wait", status=StepStatus.PAUSED)
    wait = Wait(key="approve", kind="webhook", resume_in_seconds=3600, paused=paused, expires=True)
    assert await session.wait(wait) is Stop.PAUSED
    return run_id


async def test_a_cancel_racing_a_resume_deadlocks_with_neither(database_url: str) -> None:
    observer = await connect(database_url)
    holder = await connect(database_url)
    canceling = await connect(database_url)
    resuming = await connect(database_url)
    async with (
        observer,
        holder,
        canceling,
        resuming,
        actor(database_url, "waiting", PARENT_WORKER) as worker,
    ):
        project_id, _key = await new_project(observer, "cancel-and-resume")
        await deploy(observer, project_id, WAIT_WITH_TIMEOUT)
        flow = await control.find_flow_by_name(observer, project_id, "wait-with-timeout")
        assert flow is not None
        run_id = await _paused_with_timeout(observer, worker, flow)

        async def cancel() -> bool:
            async with canceling.transaction():
                return await control.cancel(canceling, project_id, run_id)

        async def resume_it() -> bool:
            async with resuming.transaction():
                return await control.complete_waitpoint(resuming, run_id, "approve", "webhook", {})

        # The cancel is held at the run's queued job, then the resume is held too; once the
        # job is free both must finish (when a run's end deleted its queued jobs before its
        # waitpoints, they deadlocked).
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM jobs WHERE run_id = %s FOR UPDATE", (run_id,))
            canceled = asyncio.create_task(cancel())
            await wait_until_blocked_on_lock(observer, canceling.info.backend_pid)
            resumed = asyncio.create_task(resume_it())
            await wait_until_blocked_on_lock(observer, resuming.info.backend_pid)
        outcomes = await asyncio.gather(canceled, resumed, return_exceptions=True)

        assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
        assert await runs.status(observer, run_id) is RunStatus.CANCELED


TWO_WAITS: dict[str, Any] = {
    "name": "two-waits",
    "steps": [
        {"id": "first", "type": "wait_for_webhook"},
        {"id": "second", "type": "wait_for_webhook"},
        {"id": "effect", "type": "http", "method": "POST", "url": "{{ trigger.body.effect }}"},
    ],
}


async def _waiting_on(conn: AsyncConnection[Any], run_id: str) -> list[tuple[Any, ...]]:
    cur = await conn.execute(
        "SELECT r.status, w.step_key, w.state FROM flow_runs r"
        " LEFT JOIN waitpoints w ON w.run_id = r.id WHERE r.id = %s ORDER BY w.step_key",
        (run_id,),
    )
    return await cur.fetchall()


async def test_a_resume_with_a_wrong_or_stale_token_is_refused_and_changes_nothing(
    database_url: str,
) -> None:
    async with probe_server() as probe, running_stack(database_url) as stack:
        flow = await stack.deploy(TWO_WAITS)
        runs_ = [
            (await stack.trigger(flow["id"], {"effect": probe.url(name)})).json()["run_id"]
            for name in ("a", "b")
        ]
        for run_id in runs_:
            await stack.wait_for_status(run_id, {"PAUSED"})
        a, b = runs_
        first_a = await _token(database_url, a, "first")
        first_b = await _token(database_url, b, "first")
        key_part, mac = first_a.split(".")
        altered = mac[:-1] + ("B" if mac.endswith("A") else "A")
        foreign = resume.token(secrets.token_bytes(32), "first")
        refused = {
            "MAC under another secret": f"/resume/{a}/{foreign}",
            "MAC altered": f"/resume/{a}/{key_part}.{altered}",
            "MAC of another run's token": f"/resume/{a}/{key_part}.{first_b.split('.')[1]}",
            "token of another run": f"/resume/{a}/{first_b}",
            "malformed token": f"/resume/{a}/not-a-token",
            "malformed key": f"/resume/{a}/%%%%.{mac}",
            "token without MAC": f"/resume/{a}/{key_part}.",
            "unknown run": f"/resume/{uuid4()}/{first_a}",
            "run id not a UUID": f"/resume/not-a-run/{first_a}",
        }
        async with await connect(database_url) as conn:
            before = await _waiting_on(conn, a)

            for what, path in refused.items():
                answer = await stack.client.post(path, json={"by": what})
                assert answer.status_code == 404, (what, answer.text)

            assert await _waiting_on(conn, a) == before == [("PAUSED", "first", "pending")]
            resumed = await stack.client.post(f"/resume/{a}/{first_a}", json={})
            assert resumed.status_code == 202, resumed.text
            await eventually(
                lambda: _is(
                    conn, a, [("PAUSED", "first", "completed"), ("PAUSED", "second", "pending")]
                )
            )
            stale = await stack.client.post(f"/resume/{a}/{first_a}", json={"again": True})
            assert stale.status_code == 409, stale.text
            assert await _is(
                conn, a, [("PAUSED", "first", "completed"), ("PAUSED", "second", "pending")]
            )
            second_a = await _token(database_url, a, "second")
            assert (await stack.client.post(f"/resume/{a}/{second_a}", json={})).status_code == 202
            assert (await stack.wait_for_status(a))["status"] == "SUCCEEDED"
            ended = await stack.client.post(f"/resume/{a}/{second_a}", json={})
            assert ended.status_code == 409, ended.text
            assert probe.hits == {"a": 1}
            assert await _waiting_on(conn, b) == [("PAUSED", "first", "pending")]


async def _is(conn: AsyncConnection[Any], run_id: str, expected: list[tuple[Any, ...]]) -> bool:
    return await _waiting_on(conn, run_id) == expected


# --- many runs, three projects ----------------------------------------------------------------

WORK: dict[str, Any] = {
    "name": "work",
    "steps": [{"id": "work", "type": "http", "method": "POST", "url": "{{ trigger.body.url }}"}],
}
LIMITS: dict[str, int | None] = {"one": 1, "three": 3, "unlimited": None}


async def test_five_hundred_runs_of_three_projects_all_finish_within_their_limits(
    database_url: str,
) -> None:
    async with (
        probe_server(hold_seconds=0.01) as probe,
        running_stack(database_url, worker_concurrency=8, pool_max_size=12) as stack,
        await connect(database_url) as conn,
    ):
        flows = {}
        for name, limit in LIMITS.items():
            project_id, _key = await new_project(conn, name, limit)
            flows[name] = await deploy(conn, project_id, WORK)
        in_flight = asyncio.Semaphore(50)

        async def webhook(name: str) -> int:
            async with in_flight:
                answer = await stack.client.post(
                    f"/webhooks/{flows[name]}", json={"url": probe.url(name)}
                )
                return answer.status_code

        names = [list(LIMITS)[i % 3] for i in range(500)]
        # The unlimited project's requests are held until four of them are in flight at
        # once: the load is concurrent for certain, so the limits below are really tested.
        gate = probe.close_gate("unlimited")
        sent = asyncio.gather(*(webhook(name) for name in names))
        await probe.wait_for_active("unlimited", 4, within=60)
        gate.set()
        codes = await sent

        assert set(codes) == {202}
        await eventually(lambda: _all_final(conn, 500), within=120)
        cur = await conn.execute("SELECT status, count(*) FROM flow_runs GROUP BY status")
        assert dict(await cur.fetchall()) == {"SUCCEEDED": 500}
        assert await fetchval(conn, "SELECT count(*) FROM jobs") == 0
        assert await fetchval(conn, "SELECT count(*) FROM dead_jobs") == 0
        assert probe.hits == {"one": 167, "three": 167, "unlimited": 166}
        assert probe.peak["one"] == 1
        assert probe.peak["three"] <= 3
        assert probe.peak["unlimited"] > 3


async def test_a_freed_slot_of_a_saturated_project_is_reused_without_waiting_for_a_poll(
    database_url: str,
) -> None:
    # The poll is far off: only a wake-up after the first run's end can start the second.
    async with (
        probe_server() as probe,
        running_stack(database_url, poll_interval_seconds=60) as stack,
        await connect(database_url) as conn,
    ):
        project_id, _key = await new_project(conn, "one-at-a-time", 1)
        flow = await deploy(conn, project_id, WORK)
        gate = probe.close_gate("first")
        first = await stack.client.post(f"/webhooks/{flow}", json={"url": probe.url("first")})
        await probe.wait_for_hits("first", 1)
        second = await stack.client.post(f"/webhooks/{flow}", json={"url": probe.url("second")})
        assert (first.status_code, second.status_code) == (202, 202)
        # The second run is queued and the worker idle: the project's one slot is taken.
        assert await run_status(conn, second.json()["run_id"]) == "QUEUED"

        gate.set()

        await until_status(conn, first.json()["run_id"], "SUCCEEDED")
        await probe.wait_for_hits("second", 1, within=5)
        assert await until_status(conn, second.json()["run_id"], *FINAL) == "SUCCEEDED"


WORK_THEN_WAIT: dict[str, Any] = {
    "name": "work-then-wait",
    "steps": [
        {"id": "work", "type": "http", "method": "POST", "url": "{{ trigger.body.url }}"},
        {"id": "approve", "type": "wait_for_webhook"},
    ],
}


async def test_a_run_that_pauses_frees_its_limited_projects_slot_without_waiting_for_a_poll(
    database_url: str,
) -> None:
    # A paused run holds no slot: pausing must wake the idle worker for the queued run.
    async with (
        probe_server() as probe,
        running_stack(database_url, poll_interval_seconds=60) as stack,
        await connect(database_url) as conn,
    ):
        project_id, _key = await new_project(conn, "pausing-one-at-a-time", 1)
        flow = await deploy(conn, project_id, WORK_THEN_WAIT)
        gate = probe.close_gate("first")
        first = await stack.client.post(f"/webhooks/{flow}", json={"url": probe.url("first")})
        await probe.wait_for_hits("first", 1)
        second = await stack.client.post(f"/webhooks/{flow}", json={"url": probe.url("second")})
        assert await run_status(conn, second.json()["run_id"]) == "QUEUED"

        gate.set()

        assert await until_status(conn, first.json()["run_id"], "PAUSED") == "PAUSED"
        await probe.wait_for_hits("second", 1, within=5)
