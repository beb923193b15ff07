"""A worker's graceful stop, once it has stopped claiming.

Invariant: in-flight jobs get the grace period to finish; then their executions are cancelled
(which kills their sandboxes), every outcome write already begun is awaited, and the leases
of the jobs still unsettled are released, so another worker retries them at once instead of
after the lease expires.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from app.jobs import Lease, Queue
from worker.inflight import InFlight
from worker.settler import Settler

log = logging.getLogger(__name__)


async def drain(inflight: InFlight, grace_seconds: float) -> None:
    """Let in-flight jobs finish within the grace period."""
    tasks = [held.task for held in inflight]
    if not tasks:
        return
    log.info("waiting up to %ss for %d in-flight job(s)", grace_seconds, len(tasks))
    await asyncio.wait(tasks, timeout=grace_seconds)


async def stop_inflight(
    inflight: InFlight,
    settler: Settler,
    pool: AsyncConnectionPool[Any],
    queue: Queue,
    owner: str,
) -> int:
    """Cancel what is still running, wait for outcome writes, release the rest; how many
    jobs were released."""
    held = list(inflight)
    unsettled = [entry for entry in held if not entry.settled]
    for entry in held:
        entry.task.cancel()
    await asyncio.gather(*(entry.task for entry in held), return_exceptions=True)
    await settler.wait()
    return await release(pool, queue, owner, [e.job.lease for e in unsettled if not e.settled])


async def release(
    pool: AsyncConnectionPool[Any], queue: Queue, owner: str, leases: list[Lease]
) -> int:
    """Hand `leases` back for other workers; how many were (0 if the database failed us: the
    rescuer re-queues them once they expire)."""
    if not leases:
        return 0
    try:
        async with pool.connection() as conn:
            lost = await queue.release(conn, owner, leases)
    except (psycopg.Error, OSError) as exc:
        log.warning("could not release %d job(s) (%s); they will be rescued", len(leases), exc)
        return 0
    released = len(leases) - len(lost)
    log.info("released %d unfinished job(s) for other workers", released)
    return released
