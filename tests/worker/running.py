"""A worker running against a test database, and jobs for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from pydantic import SecretStr

from app.jobs import NewJob, Queue
from app.settings import Settings
from tests.integration.helpers import connect
from worker.executor import Handler
from worker.runner import Worker

QUEUE = Queue(default_max_attempts=2)


def settings_for(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": SecretStr(url),
        "worker_concurrency": 4,
        "poll_interval_seconds": 0.2,
        "heartbeat_interval_seconds": 0.2,
        "lease_ttl_seconds": 5,
        "maintenance_interval_seconds": 0.2,
        "retry_base_seconds": 0.01,
        "retry_max_seconds": 0.02,
        "worker_grace_seconds": 5,
        "pool_min_size": 1,
        "pool_max_size": 8,
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def running(
    url: str, handlers: Mapping[str, Handler], **overrides: Any
) -> AsyncIterator[tuple[Worker, asyncio.Event, asyncio.Task[None]]]:
    worker = Worker(settings_for(url, **overrides), handlers)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(worker.started.wait(), 30)
        yield worker, stop, task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def enqueue(url: str, jobs: list[NewJob]) -> list[int]:
    async with await connect(url) as conn:
        return [r.job_id for r in await QUEUE.enqueue_many(conn, jobs)]
