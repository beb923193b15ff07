"""Flows across real `sluice serve` processes: replies cross processes, crashes lose nothing.

Invariant 6 (NOTIFY is a hint): a sync caller held by one app process gets the reply of a
run that a worker in another process finished, after a resume through a third; and it gets
it by its poll when no notification comes at all. Invariants 1 and 3: a worker SIGKILLed
while a child run executes leaves neither the child nor its waiting parent stuck.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from psycopg import AsyncConnection

from app.flows import resume, runs
from app.flows.model import RunStatus, Writes
from app.jobs import Queue
from ops.ports import free_port
from tests.e2e.flow_helpers import (
    app_ready,
    deploy,
    new_project,
    probe_server,
    serve_env,
    serving,
    until_status,
    worker_ready,
)
from tests.flows.stack import FINAL, running_stack
from tests.integration.helpers import connect, eventually, fetchval

APPROVAL: dict[str, Any] = {
    "name": "approval",
    "steps": [
        {"id": "approve", "type": "wait_for_webhook"},
        {"id": "reply", "type": "respond", "body": {"by": "{{ steps.approve.output.by }}"}},
    ],
}


async def _only_run(conn: AsyncConnection[Any], flow_id: UUID) -> str:
    """The id of the flow's one run, once it exists."""

    async def exists() -> bool:
        return bool(
            await fetchval(
                conn, "SELECT count(*) = 1 FROM flow_runs WHERE flow_id = %s", (flow_id,)
            )
        )

    await eventually(exists)
    return str(await fetchval(conn, "SELECT id FROM flow_runs WHERE flow_id = %s", (flow_id,)))


async def _resume_path(conn: AsyncConnection[Any], run_id: str, key: str) -> str:
    secret = await fetchval(conn, "SELECT resume_secret FROM flow_runs WHERE id = %s", (run_id,))
    return f"/resume/{run_id}/{resume.token(bytes(secret), key)}"


async def _held_on_a_resumed_through_b(
    conn: AsyncConnection[Any], flow: UUID, a: str, b: str, *, within: float
) -> tuple[httpx.Response, httpx.Response | None]:
    """Hold a sync webhook call on app `a` while the run waits, resume it (sync) through app
    `b`: b's reply, and a's if it came within `within` seconds after b's."""
    async with (
        httpx.AsyncClient(base_url=a, timeout=60) as on_a,
        httpx.AsyncClient(base_url=b, timeout=60) as on_b,
    ):
        held = asyncio.create_task(on_a.post(f"/webhooks/{flow}/sync", json={}))
        run_id = await _only_run(conn, flow)
        await until_status(conn, run_id, "PAUSED")
        path = await _resume_path(conn, run_id, "approve")
        resumed = await on_b.post(f"{path}/sync", json={"by": "b"})
        answered, _ = await asyncio.wait({held}, timeout=within)
        held.cancel()
    assert resumed.status_code == 200, resumed.text
    assert resumed.json() == {"by": "b"}
    return resumed, held.result() if answered else None


async def test_a_sync_caller_on_one_app_gets_the_reply_of_a_run_a_worker_elsewhere_finished(
    database_url: str, tmp_path: Path
) -> None:
    ports = free_port(), free_port()
    a, b = (f"http://127.0.0.1:{port}" for port in ports)
    async with await connect(database_url) as conn:
        project_id, _key = await new_project(conn, "across")
        flow = await deploy(conn, project_id, APPROVAL)
        with (
            serving(
                serve_env(database_url, "app", tmp_path / "a", SLUICE_PORT=str(ports[0]))
            ) as app_a,
            serving(
                serve_env(database_url, "app", tmp_path / "b", SLUICE_PORT=str(ports[1]))
            ) as app_b,
            serving(serve_env(database_url, "worker", tmp_path / "w")) as worker,
        ):
            await asyncio.gather(
                app_ready(app_a, a), app_ready(app_b, b), worker_ready(worker, conn)
            )
            # Long before a's sync timeout (30 s), when a could only answer at its deadline.
            resumed, reply = await _held_on_a_resumed_through_b(conn, flow, a, b, within=10)

    assert reply is not None, "the caller held by app a was not answered"
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-sluice-run-id"] == resumed.headers["x-sluice-run-id"]
    assert reply.json() == {"by": "b"}


async def test_a_reply_handed_over_in_process_still_reaches_callers_held_elsewhere(
    database_url: str, tmp_path: Path
) -> None:
    # App a polls rarely: its caller can only be answered soon by a NOTIFY. Process b runs
    # the worker and holds the resume's sync caller, to which it hands the reply directly.
    ports = free_port(), free_port()
    a, b = (f"http://127.0.0.1:{port}" for port in ports)
    a_env = serve_env(
        database_url,
        "app",
        tmp_path / "a",
        SLUICE_PORT=str(ports[0]),
        SLUICE_POLL_INTERVAL_SECONDS="60",
    )
    b_env = serve_env(database_url, "worker_and_app", tmp_path / "b", SLUICE_PORT=str(ports[1]))
    async with await connect(database_url) as conn:
        project_id, _key = await new_project(conn, "in-process")
        flow = await deploy(conn, project_id, APPROVAL)
        with serving(a_env) as app_a, serving(b_env) as both_b:
            await asyncio.gather(
                app_ready(app_a, a), app_ready(both_b, b), worker_ready(both_b, conn)
            )
            _resumed, reply = await _held_on_a_resumed_through_b(conn, flow, a, b, within=3)

    assert reply is not None, "the caller held by app a was not answered within 3 s"
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"by": "b"}


async def test_a_sync_caller_gets_its_reply_by_polling_when_no_notification_comes(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = serve_env(
        database_url,
        "app",
        tmp_path / "a",
        SLUICE_PORT=str(port),
        SLUICE_POLL_INTERVAL_SECONDS="0.5",
        SLUICE_SYNC_TIMEOUT_SECONDS="30",
    )
    async with await connect(database_url) as conn:
        project_id, _key = await new_project(conn, "unnotified")
        flow = await deploy(conn, project_id, REPLY)
        with serving(env) as app:
            await app_ready(app, f"http://127.0.0.1:{port}")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                held = asyncio.create_task(client.post(f"/webhooks/{flow}/sync", json={}))
                run_id = UUID(await _only_run(conn, flow))
                # No worker runs anywhere: the test executes the run, through the store alone,
                # and publishes nothing. Only a re-read of the database can answer the caller.
                (job,) = await Queue().claim(conn, "the-test", 1)
                assert job.run_id == run_id
                assert await runs.start_run(conn, run_id) is not None
                response = {"status": 201, "headers": {}, "body": {"answered": "by the poll"}}
                await runs.finish_execution(
                    conn,
                    job.lease,
                    "the-test",
                    run_id=run_id,
                    status=RunStatus.SUCCEEDED,
                    output=response,
                    error=None,
                    writes=Writes(response=response, responded=True),
                )
                # The poll is 0.5 s, the sync timeout 30 s: only the poll answers this soon.
                answered, _ = await asyncio.wait({held}, timeout=5)
                held.cancel()

    assert answered, "the caller was not answered within 5 s though its poll is 0.5 s"
    reply = held.result()
    assert reply.status_code == 201, reply.text
    assert reply.json() == {"answered": "by the poll"}


REPLY: dict[str, Any] = {
    "name": "reply",
    "steps": [{"id": "reply", "type": "respond", "status": 201, "body": {"answered": "x"}}],
}


# --- a worker killed during a sub-flow ---------------------------------------------------------

PARENT: dict[str, Any] = {
    "name": "parent",
    "steps": [
        {"id": "call", "type": "call_flow", "flow": "child", "input": "{{ trigger.body }}"},
        {"id": "reply", "type": "respond", "body": {"child": "{{ steps.call.output }}"}},
    ],
}
CHILD: dict[str, Any] = {
    "name": "child",
    "steps": [
        {"id": "effect", "type": "http", "method": "POST", "url": "{{ trigger.body.url }}"},
        {"id": "reply", "type": "respond", "body": "{{ steps.effect.output.body }}"},
    ],
}


async def test_a_worker_killed_during_a_sub_flow_leaves_no_run_stuck(
    database_url: str, tmp_path: Path
) -> None:
    env = serve_env(database_url, "worker", tmp_path / "w")
    async with (
        probe_server() as probe,
        running_stack(database_url, with_worker=False) as stack,
        await connect(database_url) as conn,
    ):
        await stack.deploy(CHILD)
        parent = await stack.deploy(PARENT)
        gate = probe.close_gate("child")
        with serving(env) as doomed:
            await worker_ready(doomed, conn)
            accepted = await stack.trigger(parent["id"], {"url": probe.url("child")})
            assert accepted.status_code == 202
            run_id = accepted.json()["run_id"]
            # The child's step is in flight in the doomed worker; the parent waits on it.
            await probe.wait_for_hits("child", 1)
            assert await until_status(conn, run_id, "PAUSED") == "PAUSED"
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(timeout=30)
        gate.set()
        with serving(env) as survivor:
            await worker_ready(survivor, conn)
            # Lease TTL (2 s) plus maintenance ticks: rescued, run again, parent resumed.
            assert await until_status(conn, run_id, *FINAL, within=20) == "SUCCEEDED"
            survivor.send_signal(signal.SIGTERM)
            assert survivor.wait(timeout=30) == 0
        cur = await conn.execute(
            "SELECT status, response -> 'body' FROM flow_runs WHERE parent_run_id = %s",
            (run_id,),
        )
        assert await cur.fetchall() == [("SUCCEEDED", {"name": "child", "hit": 2})]
        body = await fetchval(
            conn, "SELECT response -> 'body' FROM flow_runs WHERE id = %s", (run_id,)
        )
        assert body == {"child": {"name": "child", "hit": 2}}
        assert probe.hits["child"] == 2
        assert await fetchval(conn, "SELECT count(*) FROM jobs") == 0
        assert await fetchval(conn, "SELECT count(*) FROM dead_jobs") == 0
