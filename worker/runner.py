"""The worker process: claims jobs into free slots, runs them, settles their outcomes.

Invariants kept here:

* Claims never exceed free slots: the loop asks for exactly `slots - in flight` jobs.
* An outcome, once computed, is written: the write is shielded from cancellation, and
  shutdown waits for shielded writes before closing the pool.
* Graceful stop: claiming stops at once (jobs claimed by a claim that raced the stop are
  handed back, not run); in-flight jobs get `grace_seconds`; then their executions are
  cancelled (which kills their sandboxes) and their leases released so another worker
  retries them immediately. A second stop request cancels everything at once, leaving the
  leases to expire and the rescuer to re-queue them.
* Lost leases (seen by the heartbeat) cancel their executions: another worker owns the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from app import db, metrics, workers
from app.flows import model, runs
from app.jobs import NOTIFY_CHANNEL, Job, Lease, Queue, queue_from
from app.locks import Leadership
from app.settings import Settings
from app.signals import Listener, Publisher, Waker, Wakeup, Watchers
from worker.completer import Completer
from worker.executor import Executor, Handler, Outcome, Verdict
from worker.handlers import default_handlers
from worker.maintenance import ROLE, Maintenance
from worker.services import WorkerServices

log = logging.getLogger(__name__)

SETTLE_ATTEMPTS = 5


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
    completer: Completer


@dataclass
class _InFlight:
    job: Job
    task: asyncio.Task[None]
    settled: bool = False


@dataclass
class WorkerStats:
    claimed: int = 0
    completed: int = 0
    retried: int = 0
    failed: int = 0
    lost: int = 0
    released: int = 0
    null_polls: int = 0
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    """The last outcome per job id (bounded to the most recent 10,000)."""


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
        self._inflight: dict[int, _InFlight] = {}
        self._slot_freed = asyncio.Event()
        self._wakeup: Wakeup | None = None
        self._settling: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then stop gracefully; cancelling the task stops at once."""
        settings = self.settings
        async with contextlib.AsyncExitStack() as resources:
            pool = await resources.enter_async_context(
                db.create_pool(settings, name="sluice-worker")
            )
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
                    self._mark_settled,
                    self._run_watchers,
                    flow_labels=metrics.FlowLabels(settings.metrics_max_flows),
                )
                handlers = await resources.enter_async_context(default_handlers(settings, services))
                self.executor = Executor(handlers)
            completer = Completer(pool, queue, self.id)
            maintenance = Maintenance(
                queue,
                Leadership(db.direct_url(settings), ROLE),
                settings.maintenance_interval_seconds,
                on_expired=lambda expired: _announce_expired(expired, run_events, cancel_events),
            )
            async with pool.connection() as conn:
                await workers.register(conn, self._info())
            log.info("worker %s started with %d slots", self.id, self.slots)
            background = [
                asyncio.create_task(listener.run(), name="listener"),
                asyncio.create_task(maintenance.run(stop), name="maintenance"),
                asyncio.create_task(self._heartbeat(pool, queue), name="heartbeat"),
            ]
            session = _Session(pool, queue, completer)
            claiming = asyncio.create_task(
                self._claim_loop(session, listener, stop), name="claim-loop"
            )
            self.started.set()
            try:
                await claiming
                await self._drain()
                await self._stop_inflight(session)
            finally:
                for task in [claiming, *background, *(e.task for e in self._inflight.values())]:
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

    # --- claiming ---------------------------------------------------------------------------

    async def _claim_loop(self, session: _Session, listener: Listener, stop: asyncio.Event) -> None:
        wakeup = Wakeup(listener, NOTIFY_CHANNEL, self.settings.poll_interval_seconds)
        self._wakeup = wakeup
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                free = self.slots - len(self._inflight)
                if free <= 0:
                    self._slot_freed.clear()
                    await _first(self._slot_freed.wait(), stopping)
                    continue
                wakeup.arm()
                try:
                    async with session.pool.connection() as conn:
                        jobs = await session.queue.claim(conn, self.id, free)
                except (psycopg.Error, OSError) as exc:
                    log.warning("claim failed (%s); retrying after a poll interval", exc)
                    await _first(asyncio.sleep(self.settings.poll_interval_seconds), stopping)
                    continue
                if stop.is_set():
                    # The stop raced this claim: hand the jobs back untouched.
                    await self._release(session, [j.lease for j in jobs])
                    break
                self.stats.claimed += len(jobs)
                metrics.observe_claims([job.run_at for job in jobs], datetime.now(UTC))
                for job in jobs:
                    self._start(job, session)
                if not jobs:
                    self.stats.null_polls += 1
                    await _first(wakeup.wait(), stopping)
        finally:
            self._wakeup = None
            wakeup.close()
            stopping.cancel()

    def _start(self, job: Job, session: _Session) -> None:
        task = asyncio.create_task(self._execute(job, session), name=f"job-{job.id}")
        self._inflight[job.id] = _InFlight(job, task)

    async def _execute(self, job: Job, session: _Session) -> None:
        try:
            outcome = await self.executor.execute(job)
            settle = asyncio.create_task(self._settle(job, outcome, session))
            self._settling.add(settle)
            settle.add_done_callback(self._settling.discard)
            await asyncio.shield(settle)
        finally:
            self._inflight.pop(job.id, None)
            self._slot_freed.set()

    async def _settle(self, job: Job, outcome: Outcome, session: _Session) -> None:
        entry = self._inflight.get(job.id)
        if entry is not None:
            entry.settled = True
        self._remember(job.id, outcome)
        for attempt in range(1, SETTLE_ATTEMPTS + 1):
            try:
                await self._write_outcome(job, outcome, session)
            except (psycopg.Error, OSError) as exc:
                if attempt == SETTLE_ATTEMPTS:
                    log.error(
                        "could not record the outcome of job %s (%s); the lease will expire "
                        "and the job run again",
                        job.id,
                        exc,
                    )
                    return
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
            else:
                if self._on_settled is not None:
                    self._on_settled(job, outcome)
                return

    async def _write_outcome(self, job: Job, outcome: Outcome, session: _Session) -> None:
        if outcome.verdict is Verdict.SETTLED:
            self.stats.completed += 1
            return
        if outcome.verdict is Verdict.COMPLETE:
            if await session.completer.complete(job.lease):
                self.stats.completed += 1
            else:
                self.stats.lost += 1
            return
        error = outcome.error or "failed"
        queue = session.queue
        async with session.pool.connection() as conn:
            if outcome.verdict is Verdict.RETRY:
                result = await queue.retry(
                    conn, self.id, job.lease, error, delay_seconds=outcome.delay_seconds
                )
            else:
                result = await queue.fail(conn, self.id, job.lease, error)
        if result.lost:
            self.stats.lost += 1
        elif result.dead:
            self.stats.failed += 1
        else:
            self.stats.retried += 1

    def wake_locally(self) -> bool:
        """Wake this worker's claim loop if it has a free slot (an app in this process
        enqueued a job); False when it has none, and other workers must be told."""
        if self._wakeup is None or len(self._inflight) >= self.slots:
            return False
        self._wakeup.notify()
        return True

    def _mark_settled(self, job_id: int) -> None:
        """A handler deleted its job itself: stop renewing the lease, never cancel it."""
        entry = self._inflight.get(job_id)
        if entry is not None:
            entry.settled = True

    def _remember(self, job_id: int, outcome: Outcome) -> None:
        outcomes = self.stats.outcomes
        outcomes[job_id] = outcome
        if len(outcomes) > 10_000:
            del outcomes[next(iter(outcomes))]

    # --- heartbeat --------------------------------------------------------------------------

    async def _heartbeat(self, pool: AsyncConnectionPool[Any], queue: Queue) -> None:
        """Renew every in-flight lease in one statement per tick, and the registry entry."""
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval_seconds)
            held = [entry.job.lease for entry in self._inflight.values() if not entry.settled]
            try:
                async with pool.connection() as conn:
                    lost = await queue.heartbeat(conn, self.id, held)
                    await workers.touch(conn, self.id)
            except (psycopg.Error, OSError) as exc:
                log.warning("heartbeat failed (%s); leases run on until they expire", exc)
                continue
            for lease in lost:
                entry = self._inflight.get(lease.job_id)
                if entry is not None and not entry.settled:
                    log.warning("job %s: lease lost, cancelling its execution", lease.job_id)
                    entry.task.cancel()

    # --- stopping ---------------------------------------------------------------------------

    async def _drain(self) -> None:
        """Let in-flight jobs finish within the grace period."""
        tasks = [entry.task for entry in self._inflight.values()]
        if not tasks:
            return
        log.info(
            "waiting up to %ss for %d in-flight job(s)",
            self.settings.worker_grace_seconds,
            len(tasks),
        )
        await asyncio.wait(tasks, timeout=self.settings.worker_grace_seconds)

    async def _stop_inflight(self, session: _Session) -> None:
        """Cancel what is still running, wait for outcome writes, release the rest."""
        unsettled = [e for e in self._inflight.values() if not e.settled]
        for entry in self._inflight.values():
            entry.task.cancel()
        await asyncio.gather(
            *(entry.task for entry in list(self._inflight.values())), return_exceptions=True
        )
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)
        leases = [e.job.lease for e in unsettled if not e.settled]
        if leases:
            await self._release(session, leases)

    async def _release(self, session: _Session, leases: list[Lease]) -> None:
        if not leases:
            return
        try:
            async with session.pool.connection() as conn:
                lost = await session.queue.release(conn, self.id, leases)
        except (psycopg.Error, OSError) as exc:
            log.warning("could not release %d job(s) (%s); they will be rescued", len(leases), exc)
            return
        self.stats.released += len(leases) - len(lost)
        log.info("released %d unfinished job(s) for other workers", len(leases) - len(lost))


async def _first(awaitable: Any, stopping: asyncio.Task[Any]) -> None:
    """Wait for `awaitable` or for the stop, whichever comes first."""
    task = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
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
