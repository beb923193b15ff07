"""The lease heartbeat: every held lease renewed in one statement per tick.

Invariant: a lease the heartbeat finds lost cancels its job's execution (another worker owns
the job now), unless the job is settled. A failed tick renews nothing: the leases run on
until they expire, and the next tick tries again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from app import workers
from app.db import Outage
from app.jobs import Queue
from worker.inflight import InFlight

log = logging.getLogger(__name__)


async def heartbeat(
    pool: AsyncConnectionPool[Any],
    queue: Queue,
    owner: str,
    inflight: InFlight,
    interval_seconds: float,
) -> None:
    """Renew every in-flight lease in one statement per tick, and the registry entry."""
    outage = Outage("heartbeat", log)
    while True:
        await asyncio.sleep(interval_seconds)
        held = inflight.leases()
        try:
            async with pool.connection() as conn:
                lost = await queue.heartbeat(conn, owner, held)
                await workers.touch(conn, owner)
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            outage.failed(exc)  # the leases run on until they expire
            continue
        outage.ok()
        for lease in lost:
            entry = inflight.get(lease.job_id)
            if entry is not None and not entry.settled:
                log.warning("job %s: lease lost, cancelling its execution", lease.job_id)
                entry.task.cancel()
