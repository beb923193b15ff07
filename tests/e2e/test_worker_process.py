"""Worker processes under SIGTERM and SIGKILL: drained, handed back, rescued exactly once."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time
from contextlib import AbstractContextManager
from typing import Any

import psycopg
import pytest

from app.jobs import NewJob, Queue
from tests.e2e.processes import sluice_env, started
from tests.sandbox.helpers import processes_of
from worker.sandbox.bwrap import problem as bwrap_problem
from worker.sandbox.uids import BLOCK, DEFAULT_BASE

WORKER = [sys.executable, "-m", "tests.e2e.worker_process"]


@pytest.fixture
def effects_db(database_url: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE effects (job_id bigint, worker text, attempt int)")
    return database_url


def worker_env(url: str, **settings: str) -> dict[str, str]:
    defaults = {
        "SLUICE_DATABASE_URL": url,
        "SLUICE_CONTAINER_TYPE": "WORKER",
        "SLUICE_POLL_INTERVAL_SECONDS": "0.2",
        "SLUICE_HEARTBEAT_INTERVAL_SECONDS": "0.5",
        "SLUICE_LEASE_TTL_SECONDS": "2",
        "SLUICE_MAINTENANCE_INTERVAL_SECONDS": "0.5",
        "SLUICE_WORKER_CONCURRENCY": "4",
    }
    return sluice_env(**{**defaults, **settings})


def worker_process(
    env: dict[str, str], command: list[str] = WORKER
) -> AbstractContextManager[subprocess.Popen[str]]:
    return started(command, env)


def wait_for_output(process: subprocess.Popen[str], text: str, timeout: float = 30) -> None:
    """Read the process's output until `text` appears (what it says it has done)."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in seen:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, remaining))
        if not ready:
            raise AssertionError(f"never printed {text!r}; printed {seen.decode()!r}")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise AssertionError(f"exited before printing {text!r}; printed {seen.decode()!r}")
        seen += chunk


def enqueue(url: str, seconds: list[float], count: int) -> list[int]:
    async def go() -> list[int]:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            results = await Queue().enqueue_many(
                conn, [NewJob("effect", {"seconds": seconds}) for _ in range(count)]
            )
            await conn.execute("NOTIFY sluice_jobs")
            return [r.job_id for r in results]

    return asyncio.run(go())


def wait_until(url: str, query: str, expected: Any, timeout: float = 30) -> None:
    """Re-read database state another process changes, until it is as expected."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(query).fetchone()
            if row is not None and row[0] == expected:
                return
            time.sleep(0.05)
        raise AssertionError(f"{query!r} never returned {expected!r} (last: {row!r})")


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query).fetchall()


RUNNING = "SELECT count(*) FROM jobs WHERE state = 'running'"


def test_sigterm_lets_in_flight_jobs_finish(effects_db: str) -> None:
    ids = enqueue(effects_db, [1.0, 1.0], 3)
    with worker_process(worker_env(effects_db, SLUICE_WORKER_GRACE_SECONDS="20")) as process:
        wait_until(effects_db, RUNNING, 3)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    assert sorted(r[0] for r in rows(effects_db, "SELECT job_id FROM effects")) == ids
    assert rows(effects_db, "SELECT count(*) FROM jobs") == [(0,)]


def test_sigterm_past_the_grace_hands_jobs_back_for_another_worker(effects_db: str) -> None:
    ids = enqueue(effects_db, [600.0, 0.1], 2)
    env = worker_env(effects_db, SLUICE_WORKER_GRACE_SECONDS="0.5")
    with worker_process(env) as first:
        wait_until(effects_db, RUNNING, 2)
        started = time.monotonic()
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
        assert time.monotonic() - started < 15, "the grace period was not enforced"
    handed_back = rows(effects_db, "SELECT state::text, lease_owner, run_at <= now() FROM jobs")
    assert handed_back == [("queued", None, True)] * 2
    with worker_process(env) as second:
        wait_until(effects_db, "SELECT count(*) FROM jobs", 0)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
    done = rows(effects_db, "SELECT job_id, attempt FROM effects ORDER BY job_id")
    assert done == [(ids[0], 2), (ids[1], 2)]


def test_sigkill_mid_job_is_rescued_and_finishes_exactly_once(effects_db: str) -> None:
    (job_id,) = enqueue(effects_db, [600.0, 0.1], 1)
    env = worker_env(effects_db)
    with worker_process(env) as doomed:
        wait_until(effects_db, RUNNING, 1)
        (owner,) = rows(effects_db, "SELECT lease_owner FROM jobs")[0]
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
    with worker_process(env) as survivor:
        # Lease TTL (2 s) plus a maintenance tick: rescued, claimed again, finished.
        wait_until(effects_db, "SELECT count(*) FROM jobs", 0, timeout=30)
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=30) == 0
    effects = rows(effects_db, "SELECT job_id, worker, attempt FROM effects")
    assert len(effects) == 1
    assert effects[0][0] == job_id
    assert effects[0][1] != owner
    assert effects[0][2] == 2
    assert rows(effects_db, "SELECT count(*) FROM dead_jobs") == [(0,)]


def test_a_second_sigterm_stops_at_once(effects_db: str) -> None:
    enqueue(effects_db, [600.0, 0.1], 1)
    env = worker_env(effects_db, SLUICE_WORKER_GRACE_SECONDS="600")
    with worker_process(env) as process:
        wait_until(effects_db, RUNNING, 1)
        process.send_signal(signal.SIGTERM)
        # Signals of one kind that arrive together are merged: wait until the first is seen.
        wait_for_output(process, "waiting up to 600.0s for 1 in-flight job(s)")
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        assert time.monotonic() - started < 10
    # Stopped at once: the lease is left to expire and the rescuer re-queues the job.
    assert rows(effects_db, "SELECT state::text FROM jobs") == [("running",)]
    assert rows(effects_db, "SELECT count(*) FROM effects") == [(0,)]


SANDBOX_UIDS = range(DEFAULT_BASE, DEFAULT_BASE + (1 << 22) * BLOCK)
"""Every uid a sandbox of any worker process may run under (see worker.sandbox.uids)."""


@pytest.mark.parametrize("mode", ["process", "bwrap"])
def test_sigkill_of_a_worker_mid_step_leaves_no_sandbox_behind(
    database_url: str, mode: str
) -> None:
    if mode == "bwrap" and bwrap_problem() is not None:
        pytest.skip(f"bubblewrap unusable: {bwrap_problem()}")
    code = "import time\ndef run(input, ctx):\n    time.sleep(600)\n"
    asyncio.run(_enqueue_step(database_url, code))
    env = worker_env(database_url, SLUICE_SANDBOX=mode)
    before = set(processes_of(SANDBOX_UIDS))
    with worker_process(env, [sys.executable, "-m", "app.cli", "serve"]) as doomed:
        wait_until(database_url, RUNNING, 1)

        def sleeping_step() -> bool:
            return bool(set(processes_of(SANDBOX_UIDS)) - before)

        deadline = time.monotonic() + 30
        while not sleeping_step():
            assert time.monotonic() < deadline, "the step never started in a sandbox"
            time.sleep(0.05)
        doomed.send_signal(signal.SIGKILL)
        doomed.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while set(processes_of(SANDBOX_UIDS)) - before:
        assert time.monotonic() < deadline, "sandbox processes outlived their worker"
        time.sleep(0.05)


async def _enqueue_step(url: str, code: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await Queue().enqueue(conn, NewJob("run_step", {"code": code}))
