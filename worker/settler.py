"""Writes each job's outcome: complete, retry or fail, fenced on the job's lease.

Invariant: an outcome, once computed, is written: the write runs in a task of its own that
the execution awaits through `asyncio.shield`, so cancelling the execution (a stop, a lost
lease) never cancels it, and `wait()` lets shutdown finish every write before the pool
closes. A write that fails on a database error is tried again while the lease may still
be ours (its TTL; the writes are fenced, so a repeat of one that had committed changes
nothing); after that it is given up: the lease expires and the job runs again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from app import run_log
from app.db import Outage, again_after_outage
from app.jobs import Job, Queue
from worker.completer import Completer
from worker.executor import Outcome, Verdict
from worker.inflight import InFlight
from worker.stats import WorkerStats

log = logging.getLogger(__name__)


class Settler:
    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        queue: Queue,
        completer: Completer,
        owner: str,
        *,
        inflight: InFlight,
        stats: WorkerStats,
        on_settled: Callable[[Job, Outcome], None] | None,
    ) -> None:
        self._pool = pool
        self._queue = queue
        self._completer = completer
        self._owner = owner
        self._inflight = inflight
        self._stats = stats
        self._on_settled = on_settled
        self._writing: set[asyncio.Task[None]] = set()
        self._outage = Outage("outcome writes", log)

    async def settle(self, job: Job, outcome: Outcome) -> None:
        """Write `outcome`; cancelling the caller does not cancel the write."""
        write = asyncio.create_task(self._settle(job, outcome))
        self._writing.add(write)
        write.add_done_callback(self._writing.discard)
        await asyncio.shield(write)

    async def wait(self) -> None:
        """Until every write begun so far has ended."""
        if self._writing:
            await asyncio.gather(*self._writing, return_exceptions=True)

    async def _settle(self, job: Job, outcome: Outcome) -> None:
        self._inflight.settle(job.id)
        self._stats.remember(job.id, outcome)
        try:
            await again_after_outage(
                lambda: self._write(job, outcome),
                within_seconds=self._queue.lease_seconds,
                outage=self._outage,
            )
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            log.error(
                "could not record the outcome of job %s (%s); the lease will expire and the "
                "job run again",
                job.id,
                exc,
            )
            return
        if self._on_settled is not None:
            self._on_settled(job, outcome)

    async def _write(self, job: Job, outcome: Outcome) -> None:
        stats = self._stats
        if outcome.verdict is Verdict.SETTLED:
            stats.completed += 1
            return
        if outcome.verdict is Verdict.COMPLETE:
            if await self._completer.complete(job.lease):
                stats.completed += 1
            else:
                stats.lost += 1
            return
        error = outcome.error or "failed"
        async with self._pool.connection() as conn:
            if outcome.verdict is Verdict.RETRY:
                result = await self._queue.retry(
                    conn, self._owner, job.lease, error, delay_seconds=outcome.delay_seconds
                )
            else:
                result = await self._queue.fail(conn, self._owner, job.lease, error)
        if result.lost:
            stats.lost += 1
        elif result.dead:
            stats.failed += 1
            if job.run_id is not None:  # its run failed with it (the dead_jobs trigger)
                run_log.transition(run_log.Transition.FAILED, **run_log.job_ids(job), error=error)
        else:
            stats.retried += 1
