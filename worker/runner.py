"""The worker process: claims jobs into free slots, runs them, settles their outcomes.

Invariants kept here:

* Claims never exceed free slots: the loop asks for exactly `slots - in flight` jobs. A
  claim that gets fewer is followed by a wait for a wake-up (listen first: the wake-up is
  armed before the claim), not by another claim.
* Stopping: claiming stops at once (jobs claimed by a claim that raced the stop are handed
  back, not run); then the graceful stop (`stopping`) runs, and only after it, once every
  outcome write (`settler`) has ended, does the pool close. A second stop request cancels
  everything at once, leaving the leases to expire and the rescuer to re-queue them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from app import db, metrics, sampling, tracing, workers
from app.db import Outage
from app.flows import control, model, runs
from app.jobs import NOTIFY_CHANNEL, Job, Queue, queue_from
from app.locks import Leadership
from app.settings import Settings
from app.signals import Listener, Publisher, Waker, Wakeup, Watchers
from worker import stopping
from worker.completer import Completer
from worker.executor import Executor, Handler, Outcome
from worker.handlers import default_handlers
from worker.heartbeat import heartbeat
from worker.inflight import InFlight
from worker.maintenance import ROLE, Maintenance
from worker.services import WorkerServices
from worker.settler import Settler
from worker.stats import WorkerStats

log = logging.getLogger(__name__)

RECLAIM_SECONDS = 0.5
"""After a claim failed (the database is away), the next try; each waits for a connection
up to SLUICE_DATABASE_TIMEOUT_SECONDS, so this bounds only how soon after its return."""


def new_worker_id() -> str:
    """Unique per process start: host, pid and a random suffix (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _version() -> str:
    try:
        return metadata.version("sluice")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class _Session:
    """What the loops of one `run()` share; it lives exactly as long as that call."""

    pool: AsyncConnectionPool[Any]
    queue: Queue
    settler: Settler


class Worker:
    def __init__(
        self,
        settings: Settings,
        handlers: Mapping[str, Handler] | None = None,
        # None: the built-in job kinds (`worker.handlers`), with their sandboxes.
        *,
        worker_id: str | None = None,
        on_settled: Callable[[Job, Outcome], None] | None = None,
        run_watchers: Watchers | None = None,
        # Sync callers of an app in this process, handed their replies directly.
    ) -> None:
        self.settings = settings
        self.id = worker_id or new_worker_id()
        self.slots = settings.worker_concurrency
        self._handlers = handlers
        self.executor = Executor(handlers or {})
        self.stats = WorkerStats()
        self._on_settled = on_settled
        self._run_watchers = run_watchers or Watchers()
        self.started = asyncio.Event()
        self._inflight = InFlight()
        self._wakeup: Wakeup | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then stop gracefully; cancelling the task stops at once."""
        settings = self.settings
        tracing.setup(settings)
        async with contextlib.AsyncExitStack() as resources:
            pool = await resources.enter_async_context(
                db.create_pool(settings, name="sluice-worker")
            )
            resources.enter_context(sampling.watch_database("worker", pool))
            await pool.wait(timeout=30)
            waker = Waker(pool, NOTIFY_CHANNEL)
            run_events = Publisher(pool, model.RUN_EVENTS_CHANNEL)
            cancel_events = Publisher(pool, model.CANCEL_CHANNEL)
            queue = queue_from(settings, waker)
            listener = Listener(db.direct_url(settings), [NOTIFY_CHANNEL, model.CANCEL_CHANNEL])
            cancels = Watchers(wake_on_reconnect=False)
            listener.subscribe(model.CANCEL_CHANNEL, cancels.on_notify)
            # Built-in handlers own sandboxes: they close after every job has stopped (and
            # before the pool).
            if self._handlers is None:
                services = WorkerServices(
                    pool,
                    queue,
                    self.id,
                    run_events,
                    cancels,
                    self._inflight.settle,
                    self._run_watchers,
                    flow_labels=metrics.FlowLabels(settings.metrics_max_flows),
                )
                handlers = await resources.enter_async_context(default_handlers(settings, services))
                self.executor = Executor(handlers)
            completer = Completer(pool, queue, self.id)
            settler = Settler(
                pool,
                queue,
                completer,
                self.id,
                inflight=self._inflight,
                stats=self.stats,
                on_settled=self._on_settled,
            )
            maintenance = Maintenance(
                queue,
                Leadership(db.direct_url(settings), ROLE),
                settings.maintenance_interval_seconds,
                on_expired=lambda expired: _announce_expired(expired, run_events, cancel_events),
                key_window_seconds=settings.idempotency_window_seconds,
                schedules=control.RunBudget.of(settings),
            )
            async with pool.connection() as conn:
                await workers.register(conn, self._info())
            log.info("worker %s started with %d slots", self.id, self.slots)
            background = [
                asyncio.create_task(listener.run(), name="listener"),
                asyncio.create_task(maintenance.run(stop), name="maintenance"),
                asyncio.create_task(
                    heartbeat(
                        pool, queue, self.id, self._inflight, settings.heartbeat_interval_seconds
                    ),
                    name="heartbeat",
                ),
            ]
            session = _Session(pool, queue, settler)
            claiming = asyncio.create_task(
                self._claim_loop(session, listener, stop), name="claim-loop"
            )
            self.started.set()
            try:
                await claiming
                await stopping.drain(self._inflight, settings.worker_grace_seconds)
                self.stats.released += await stopping.stop_inflight(
                    self._inflight, settler, pool, queue, self.id
                )
            finally:
                for task in [claiming, *background, *(held.task for held in self._inflight)]:
                    task.cancel()
                await asyncio.gather(claiming, *background, return_exceptions=True)
                await completer.aclose()
                await waker.aclose()
                await run_events.aclose()
                await cancel_events.aclose()
                with contextlib.suppress(psycopg.Error):
                    async with pool.connection(timeout=5) as conn:
                        await workers.stopped(conn, self.id)
            log.info("worker %s stopped", self.id)

    def _info(self) -> workers.WorkerInfo:
        return workers.WorkerInfo(
            id=self.id,
            host=socket.gethostname(),
            pid=os.getpid(),
            container_type=str(self.settings.container_type),
            slots=self.slots,
            version=_version(),
        )

    async def _claim_loop(self, session: _Session, listener: Listener, stop: asyncio.Event) -> None:
        wakeup = Wakeup(listener, NOTIFY_CHANNEL, self.settings.poll_interval_seconds)
        outage = Outage("claim loop", log)
        self._wakeup = wakeup
        stopped = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                free = self.slots - len(self._inflight)
                if free <= 0:
                    self._inflight.freed.clear()
                    await _first(self._inflight.freed.wait(), stopped)
                    continue
                wakeup.arm()
                try:
                    async with session.pool.connection() as conn:
                        jobs = await session.queue.claim(conn, self.id, free)
                except (psycopg.Error, PoolTimeout, OSError) as exc:
                    outage.failed(exc)
                    await _first(asyncio.sleep(RECLAIM_SECONDS), stopped)
                    continue
                outage.ok()
                if stop.is_set():
                    # The stop raced this claim: hand the jobs back untouched.
                    self.stats.released += await stopping.release(
                        session.pool, session.queue, self.id, [j.lease for j in jobs]
                    )
                    break
                self.stats.claimed += len(jobs)
                metrics.observe_claims([job.run_at for job in jobs], datetime.now(UTC))
                for job in jobs:
                    self._start(job, session)
                if len(jobs) < free:
                    # No more ready jobs for us (or their projects are at their limits): wait
                    # for a wake-up (armed before the claim) rather than ask again at once.
                    self.stats.null_polls += not jobs
                    await _first(wakeup.wait(), stopped)
        finally:
            self._wakeup = None
            wakeup.close()
            stopped.cancel()

    def _start(self, job: Job, session: _Session) -> None:
        task = asyncio.create_task(self._execute(job, session), name=f"job-{job.id}")
        self._inflight.add(job, task)

    async def _execute(self, job: Job, session: _Session) -> None:
        try:
            outcome = await self.executor.execute(job)
            await session.settler.settle(job, outcome)
        finally:
            self._inflight.end(job.id)

    def wake_locally(self) -> bool:
        """Wake this worker's claim loop if it has a free slot (an app in this process
        enqueued a job); False when it has none, and other workers must be told."""
        if self._wakeup is None or len(self._inflight) >= self.slots:
            return False
        self._wakeup.notify()
        return True


async def _first(awaitable: Any, stopped: asyncio.Task[Any]) -> None:
    """Wait for `awaitable` or for the stop, whichever comes first."""
    task = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _announce_expired(
    expired: list[runs.Expired], run_events: Publisher, cancel_events: Publisher
) -> None:
    """Runs that just timed out: wake their sync callers, stop their executions."""
    for run in expired:
        run_events.publish(str(run.run_id))
        if run.was is model.RunStatus.RUNNING:
            cancel_events.publish(str(run.run_id))
