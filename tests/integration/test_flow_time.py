"""Runs that wait — delays, timeouts of waits, the paused-run TTL, a resume that comes early —
executed by the real flow engine against real Postgres, at instants the test chooses.

The engine is given the test's clock (the run store and the replay both read it), so a
30-second delay is 30 seconds of injected time, not of waiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from app.flows import control, runs
from app.flows.control import RunBudget
from app.flows.model import RUN_EVENTS_CHANNEL
from app.jobs import Queue
from app.settings import Settings
from app.signals import Publisher, Watchers
from tests.e2e.flow_helpers import deploy, new_project
from tests.integration.helpers import T0, at, connect
from worker.cache_requirements import RequirementsInstaller
from worker.code import CodeRunner, limits_from
from worker.flow import FlowEngine
from worker.flow.performers import Performers
from worker.sandbox import SandboxPool, resolve_mode
from worker.services import WorkerServices
from worker.steps.http import HttpClient
from worker.templates import RenderBudget, TemplateRenderer

WORKER = "the-test"
TTL = 3600.0


@dataclass
class Engine:
    """The flow engine on the test's database and clock; `execute` runs what is due."""

    conn: AsyncConnection[Any]
    engine: FlowEngine
    queue: Queue
    project_id: int
    now: datetime = T0
    executions: int = 0
    flows: dict[str, Any] = field(default_factory=dict)

    async def start(self, document: dict[str, Any], body: Any = None) -> UUID:
        if document["name"] not in self.flows:
            await deploy(self.conn, self.project_id, document)
            self.flows[document["name"]] = await control.find_flow_by_name(
                self.conn, self.project_id, document["name"]
            )
        trigger = {"body": body if body is not None else {}, "headers": {}, "query": {}}
        async with self.conn.transaction():
            return await control.create_run(
                self.conn, self.flows[document["name"]], trigger, RunBudget(600, 5), now=self.now
            )

    async def execute(self, at: datetime) -> int:
        """Run every job due at `at`, as a worker would then; how many ran."""
        self.now = at
        jobs = await self.queue.claim(self.conn, WORKER, 100, now=at)
        for job in jobs:
            await self.engine(job)
        self.executions += len(jobs)
        return len(jobs)

    async def run(self, run_id: UUID) -> dict[str, Any]:
        cur = await self.conn.execute(
            "SELECT status, error, output FROM flow_runs WHERE id = %s", (run_id,)
        )
        row = await cur.fetchone()
        assert row is not None
        cur = await self.conn.execute(
            "SELECT key, status, output, error FROM step_runs WHERE run_id = %s ORDER BY id",
            (run_id,),
        )
        steps = {
            key: (status, output, error) for key, status, output, error in await cur.fetchall()
        }
        return {"status": row[0], "error": row[1], "output": row[2], "steps": steps}

    async def continuation(self, run_id: UUID) -> datetime | None:
        cur = await self.conn.execute(
            "SELECT run_at FROM jobs WHERE run_id = %s AND state = 'queued'", (run_id,)
        )
        row = await cur.fetchone()
        return None if row is None else row[0]


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[Engine]:
    settings = Settings(
        database_url=SecretStr(database_url), paused_run_ttl=TTL, http_allow_private=True
    )
    queue = Queue(lease_seconds=30)
    pool = AsyncConnectionPool(
        database_url, min_size=1, max_size=4, open=False, kwargs={"autocommit": True}
    )
    installer = RequirementsInstaller(settings.resolved_cache_dir / "requirements")
    async with (
        pool,
        await connect(database_url) as conn,
        SandboxPool(resolve_mode("process"), max_uses=1) as sandboxes,
        HttpClient(allow_private=True) as http,
        TemplateRenderer(RenderBudget()) as templates,
    ):
        run_events = Publisher(pool, RUN_EVENTS_CHANNEL)
        services = WorkerServices(
            pool, queue, WORKER, run_events, Watchers(), lambda _job_id: None, Watchers()
        )
        code = CodeRunner(sandboxes, installer, limits_from(settings))
        performers = Performers(code, http, templates)
        project_id, _key = await new_project(conn, "waits")
        engine = Engine(conn, FlowEngine(settings, services, performers), queue, project_id)
        engine.engine.clock = lambda: engine.now
        yield engine
        await run_events.aclose()


DELAYS: dict[str, Any] = {
    "name": "delays",
    "steps": [
        {"id": "short", "type": "delay", "seconds": 30},
        {"id": "until", "type": "delay", "until": "{{ trigger.body.at }}"},
        {"id": "after", "type": "respond", "body": "done"},
    ],
}


async def test_a_delay_pauses_the_run_for_seconds_or_until_a_time(engine: Engine) -> None:
    run_id = await engine.start(DELAYS, {"at": at(90).isoformat()})

    assert await engine.execute(T0) == 1
    paused = await engine.run(run_id)
    assert paused["status"] == "PAUSED"
    assert paused["steps"]["short"][0] == "PAUSED"
    assert await engine.continuation(run_id) == at(30)
    assert await engine.execute(at(29.9)) == 0

    assert await engine.execute(at(30)) == 1
    assert (await engine.run(run_id))["steps"]["until"][0] == "PAUSED"
    assert await engine.continuation(run_id) == at(90)
    assert await engine.execute(at(90)) == 1

    run = await engine.run(run_id)
    assert run["status"] == "SUCCEEDED", run["error"]
    assert run["output"] == {"status": 200, "headers": {}, "body": "done"}
    assert run["steps"]["short"][:2] == (
        "SUCCEEDED",
        {"resumed_at": at(30).isoformat(), "waited_until": at(30).isoformat()},
    )
    assert run["steps"]["until"][1] == {
        "resumed_at": at(90).isoformat(),
        "waited_until": at(90).isoformat(),
    }


async def test_a_time_already_past_does_not_pause(engine: Engine) -> None:
    run_id = await engine.start(DELAYS, {"at": "2000-01-01T00:00:00Z"})

    await engine.execute(T0)
    await engine.execute(at(30))

    run = await engine.run(run_id)
    assert run["status"] == "SUCCEEDED", run["error"]
    # "short" paused once, "until" did not: two executions of the run, not three.
    assert engine.executions == 2
    assert run["steps"]["until"][1]["waited_until"] == "2000-01-01T00:00:00+00:00"


def _approval(name: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "steps": [
            {"id": "approval", "type": "wait_for_webhook", "timeout_seconds": 30, **fields},
            {"id": "after", "type": "respond", "body": "{{ steps.approval.status }}"},
        ],
    }


async def test_a_wait_past_its_timeout_times_out_unless_errors_are_tolerated(
    engine: Engine,
) -> None:
    strict = await engine.start(_approval("strict"))
    tolerant = await engine.start(_approval("tolerant", continue_on_error=True))
    await engine.execute(T0)
    assert await engine.continuation(strict) == at(30)

    assert await engine.execute(at(30)) == 2

    timed_out, tolerated = await engine.run(strict), await engine.run(tolerant)
    assert timed_out["status"] == "TIMEOUT"
    assert timed_out["error"] == "step 'approval' failed: not resumed within 30 seconds"
    assert list(timed_out["steps"]) == ["approval"]
    assert timed_out["steps"]["approval"][0] == "TIMEOUT"
    assert tolerated["status"] == "SUCCEEDED"
    assert tolerated["steps"]["approval"][0] == "TIMEOUT"
    assert tolerated["output"]["body"] == "TIMEOUT"


async def test_a_resume_before_the_timeout_wins_over_it(engine: Engine) -> None:
    run_id = await engine.start(_approval("resumed"))
    await engine.execute(T0)
    async with engine.conn.transaction():
        assert await control.complete_waitpoint(
            engine.conn, run_id, "approval", "webhook", {"ok": 1}, now=at(10)
        )

    assert await engine.execute(at(10)) == 1

    run = await engine.run(run_id)
    assert (run["status"], run["output"]["body"]) == ("SUCCEEDED", "SUCCEEDED")
    assert run["steps"]["approval"][:2] == ("SUCCEEDED", {"ok": 1})
    assert await engine.continuation(run_id) is None  # the timeout's job went with the run


async def test_a_run_waiting_past_the_paused_run_ttl_times_out_but_a_delay_does_not(
    engine: Engine,
) -> None:
    waiting = await engine.start(
        {"name": "waits", "steps": [{"id": "w", "type": "wait_for_webhook"}]}
    )
    sleeping = await engine.start(
        {"name": "sleeps", "steps": [{"id": "nap", "type": "delay", "seconds": 2 * TTL}]}
    )
    await engine.execute(T0)

    assert await runs.expire_runs(engine.conn, now=at(TTL)) == []
    expired = await runs.expire_runs(engine.conn, now=at(TTL + 1))

    assert [e.run_id for e in expired] == [waiting]
    assert (await engine.run(waiting))["error"] == "paused longer than SLUICE_PAUSED_RUN_TTL"
    assert await engine.execute(at(2 * TTL)) == 1
    assert (await engine.run(sleeping))["status"] == "SUCCEEDED"


async def test_a_resume_that_arrives_before_the_wait_is_kept(engine: Engine) -> None:
    early = {
        "name": "early",
        "steps": [
            {"id": "first", "type": "delay", "seconds": 30},
            {"id": "later", "type": "wait_for_webhook"},
        ],
    }
    run_id = await engine.start(early)
    await engine.execute(T0)
    async with engine.conn.transaction():
        assert await control.complete_waitpoint(
            engine.conn, run_id, "later", "webhook", {"early": True}, now=at(5)
        )
    # The resume scheduled the run at once; it finds the delay not over and pauses again.
    assert await engine.execute(at(5)) == 1
    assert (await engine.run(run_id))["status"] == "PAUSED"

    assert await engine.execute(at(30)) == 1

    run = await engine.run(run_id)
    assert run["status"] == "SUCCEEDED", run["error"]
    assert run["output"] == {"early": True}
    assert engine.executions == 3
