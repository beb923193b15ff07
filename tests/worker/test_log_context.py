"""The ids of the job being executed are on every line it logs, and on no other job's."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from app import logs
from app.jobs import Job
from app.settings import LogFormat
from worker.executor import Executor, Verdict

log = logging.getLogger("tests.step")


def job(job_id: int, run_id: uuid.UUID) -> Job:
    now = datetime.now(UTC)
    return Job(job_id, "step", 3, run_id, {}, 0, now, 2, 3, "worker-a", now, None, now)


async def test_lines_inside_a_job_carry_its_ids_and_other_jobs_lines_do_not() -> None:
    first_run, second_run = uuid.uuid4(), uuid.uuid4()
    started: list[asyncio.Task[None]] = []
    release = asyncio.Event()

    async def later() -> None:  # a task the first job starts, logging after the job ended
        await release.wait()
        log.info("late line")

    async def step(current: Job) -> None:
        logs.bind(flow=f"flow-{current.id}")  # as the flow engine binds the flow's name
        log.info("inside job %s", current.id)
        if current.id == 1:
            started.append(asyncio.create_task(later()))

    executor = Executor({"step": step})
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter(LogFormat.JSON))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        assert (await executor.execute(job(1, first_run))).verdict is Verdict.COMPLETE
        log.info("between jobs")
        second, third = job(2, second_run), job(3, second_run)
        both = asyncio.gather(executor.execute(second), executor.execute(third))
        release.set()
        await asyncio.gather(both, *started)
    finally:
        log.removeHandler(handler)
    seen: dict[str, dict[str, Any]] = {}
    for line in stream.getvalue().splitlines():
        fields = json.loads(line)
        event = fields.pop("event")
        seen[event] = {k: v for k, v in fields.items() if k not in ("timestamp", "level", "logger")}
    assert seen["inside job 1"] == {
        "run_id": str(first_run),
        "project": 3,
        "job_id": 1,
        "attempt": 2,
        "worker": "worker-a",
        "flow": "flow-1",
    }
    assert seen["late line"]["job_id"] == 1  # a task keeps the ids of the job that made it
    assert seen["between jobs"] == {}
    assert seen["inside job 2"]["run_id"] == str(second_run)
    assert (seen["inside job 2"]["job_id"], seen["inside job 2"]["flow"]) == (2, "flow-2")
    assert (seen["inside job 3"]["job_id"], seen["inside job 3"]["flow"]) == (3, "flow-3")
    assert logs.current() == {}
