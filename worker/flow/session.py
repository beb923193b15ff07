"""RunSession: the only writer of one execution of a run.

Each method is one transaction (most of them one statement) and returns what it found as a
value: the loaded run, a waitpoint, a started child, or a `Stop` saying why the execution
ends here. After each commit it tells whoever can be waiting: the run's sync callers
(in-process, else NOTIFY), idle workers (a freed slot, a new job), and the worker's lease
keeper (the job is gone: stop renewing it).

Invariants kept here (with `app.flows.runs` and the queue's fence):

* A database error does not end an execution: each transaction is tried again on a fresh
  connection while the lease may still be ours (its TTL), so a blip cannot fail the job and
  make its replay repeat a step whose effect happened. Each is safe to repeat: the fenced
  statements find the job gone if their commit had happened, the records are upserts, a
  child run's id is the replay's, and a pause repeated finds its run paused.
* Every write is fenced on the job's lease: `save_progress` and `finish_execution` in the
  statement itself, the other transactions through the queue's `complete_tx` / `hold_tx`,
  rolled back when the lease is lost (`Stop.LOST`). The last write of an execution — the
  run's end, its pause, its reschedule, or settling a run that ended elsewhere — deletes
  the job in the same transaction.
* Pauses take the run row, then the waitpoint, then the job (the lock order of the run
  store), so a pause racing a resume, a child's end or a cancel deadlocks with none of them.
* A run that was canceled or timed out meanwhile is never written back: pauses find it
  through the locked run row, commits through the status they return, and its job is
  settled (deleted, and the run continued if it was retried).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from psycopg import AsyncConnection

from app import metrics, tracing
from app.db import Outage, again_after_outage
from app.flows import control, runs
from app.flows.control import RunBudget
from app.flows.model import LoadedRun, Reply, RunStatus, StepRecord, StepStatus, Waitpoint, Writes
from app.jobs import Fence, Job
from worker.flow.effects import ChildStarted, Failed, Finish, StartChild, Wait
from worker.services import WorkerServices

log = logging.getLogger(__name__)

T = TypeVar("T")


class Stop(enum.Enum):
    """Why an execution ends before its run does; the job is settled unless LOST."""

    PAUSED = "paused"
    """The run waits; its job was handed over to the continuation (if the wait has a time)."""
    RESCHEDULED = "rescheduled"
    """A step's retry backoff: the run continues later, its job handed over."""
    ENDED = "ended"
    """The run ended elsewhere (a cancel, a timeout); its job is deleted."""
    LOST = "lost"
    """Another worker holds the job now; nothing was written."""


class RunSession:
    def __init__(
        self,
        services: WorkerServices,
        job: Job,
        run_id: UUID,
        *,
        budget: RunBudget,
        paused_ttl_seconds: float,
        now: Callable[[], datetime | None] = lambda: None,
    ) -> None:
        """`now` is the time statements are run at (None: the database's clock)."""
        self.services = services
        self.job = job
        self.run_id = run_id
        self.budget = budget
        self.paused_ttl_seconds = paused_ttl_seconds
        self.now = now
        self.parent_run_id: UUID | None = None
        self.depth = 0
        self.resumable = False
        """Sync callers may wait in other processes (the run has paused before)."""
        self._outage = Outage(f"run {run_id}", log)
        self.metric_labels = metrics.OTHER_LABELS
        """The run's bounded project and flow labels, set by `begin` (`_other` before)."""
        self._timer = metrics.RunTimer(self.metric_labels)

    # --- reads ---------------------------------------------------------------------------------

    async def begin(self) -> LoadedRun | Stop:
        """Mark the run RUNNING and load what earlier executions recorded; ENDED if final."""
        loaded = await self._on_connection(
            lambda conn: runs.start_run(conn, self.run_id, now=self.now())
        )
        if loaded is None:
            return await self.settle()
        self.parent_run_id = loaded.parent_run_id
        self.depth = loaded.depth
        self.resumable = bool(loaded.waitpoints)
        self.metric_labels = self.services.flow_labels(str(loaded.project_id), loaded.flow_name)
        self._timer = metrics.RunTimer.begun(self.metric_labels, loaded)
        return loaded

    async def definition(self, version_id: int) -> dict[str, Any]:
        return await self._on_connection(lambda conn: runs.definition(conn, version_id))

    async def status(self) -> RunStatus:
        return await self._on_connection(lambda conn: runs.status(conn, self.run_id))

    # --- writes --------------------------------------------------------------------------------

    async def commit(self, writes: Writes) -> Stop | None:
        """Commit `writes` before a step with effects (renewing the lease); None: go on."""
        if not writes:
            return None
        progress = await self._on_connection(
            lambda conn: runs.save_progress(
                conn,
                self.job.lease,
                self.services.owner,
                lease_seconds=self.services.queue.lease_seconds,
                run_id=self.run_id,
                writes=writes,
                now=self.now(),
            )
        )
        if not progress.held:
            return Stop.LOST
        running = progress.status is RunStatus.RUNNING
        if writes.responded:
            self._announce(Reply(progress.status, writes.response, None, None) if running else None)
        return None if running else await self.settle()

    async def wait(self, effect: Wait) -> Waitpoint | Stop:
        """The waitpoint if it is completed or due (the run goes on); else pause on it."""
        self.resumable = True
        found = await self._in_transaction(lambda conn: self._wait(conn, effect))
        if found is Stop.LOST:
            return found
        if isinstance(found, Stop):
            return self._stopped(found)
        self._announce_reply(effect.writes)
        return found

    async def _wait(self, conn: AsyncConnection[Any], effect: Wait) -> Waitpoint | Stop:
        if not await self._lock_running(conn):
            return Stop.ENDED
        locked = await runs.lock_waitpoint(
            conn,
            self.run_id,
            effect.key,
            kind=effect.kind,
            resume_in_seconds=effect.resume_in_seconds,
            now=self.now(),
        )
        if not (locked.completed or locked.due):
            await self._pause(conn, effect.paused, effect.writes, locked.resume_at, effect.expires)
            return Stop.PAUSED
        # Resumed before the pause, or already due: go on without pausing.
        await self._hold(conn)
        await runs.close_waitpoint(conn, self.run_id, effect.key, now=self.now())
        await runs.record(conn, self.run_id, effect.writes)
        return Waitpoint(
            effect.key,
            effect.kind,
            locked.state,
            locked.resume_at,
            locked.child_run_id,
            locked.payload,
        )

    async def start_child(
        self, project_id: int, effect: StartChild
    ) -> ChildStarted | Failed | Stop:
        """Start the called flow's run; with `wait`, the parent pauses in the same commit."""
        answer = await self._in_transaction(
            lambda conn: self._start_child(conn, project_id, effect)
        )
        if answer is Stop.LOST:
            return answer
        if answer is Stop.ENDED:
            return self._stopped(answer)
        self.services.queue.wake()  # the child's job, and the slot a paused parent freed
        if answer is Stop.PAUSED:
            self.resumable = True
            self._job_done(wake=False)
            self.services.run_events.publish(str(self.run_id))
            return answer
        self._announce_reply(effect.writes)
        return answer

    async def _start_child(
        self, conn: AsyncConnection[Any], project_id: int, effect: StartChild
    ) -> ChildStarted | Failed | Stop:
        if effect.wait and not await self._lock_running(conn):
            return Stop.ENDED
        target = await control.find_flow_by_name(conn, project_id, effect.flow)
        refusal = None
        if target is None:
            refusal = f"no enabled flow named '{effect.flow}' in this project"
        elif await control.at_live_cap(conn, project_id, self.budget):
            refusal = (
                f"the project has {self.budget.max_live_runs} live runs "
                "(SLUICE_MAX_LIVE_RUNS); none may start until some end"
            )
        if target is None or refusal is not None:
            await self._hold(conn)
            await runs.record(conn, self.run_id, effect.writes)
            return Failed(StepStatus.FAILED, refusal or "")
        child = await control.create_run(
            conn,
            target,
            {"body": effect.input, "headers": {}, "query": {}},
            self.budget,
            parent_run_id=self.run_id,
            parent_step_key=effect.key if effect.wait else None,
            run_id=effect.child_run_id,
            depth=self.depth + 1,
            now=self.now(),
            traceparent=tracing.traceparent(),
        )
        if not effect.wait:
            await self._hold(conn)
            await runs.record(conn, self.run_id, effect.writes.adding(effect.started))
            return ChildStarted(child)
        await runs.lock_waitpoint(
            conn, self.run_id, effect.key, kind="subflow", child_run_id=child, now=self.now()
        )
        await self._pause(conn, effect.paused, effect.writes, None, expires=True)
        return Stop.PAUSED

    async def reschedule(self, writes: Writes, run_at: datetime) -> Stop:
        """Record `writes` and continue the run at `run_at` (a step's retry backoff)."""

        async def reschedule(conn: AsyncConnection[Any]) -> Stop:
            await runs.record(conn, self.run_id, writes)
            await self._complete(conn)
            await runs.continue_run(conn, self.run_id, at=run_at)
            return Stop.RESCHEDULED

        done = await self._in_transaction(reschedule)
        return done if done is Stop.LOST else self._stopped(done)

    async def finish(self, outcome: Finish) -> runs.Finished | Stop:
        """Delete the job, record the last results and end the run, in one statement."""
        finished = await self._on_connection(
            lambda conn: runs.finish_execution(
                conn,
                self.job.lease,
                self.services.owner,
                run_id=self.run_id,
                status=outcome.status,
                output=outcome.output,
                error=outcome.error,
                writes=outcome.writes,
                now=self.now(),
            )
        )
        if not finished.held:
            return Stop.LOST
        # Wake idle workers only when it can matter (this is the hot path): for a freed slot
        # of a limited project, or for a parent this run's end scheduled.
        self._job_done(wake=finished.gated or self.parent_run_id is not None)
        self._timer.finished(str(outcome.status), self.now())
        self._announce(finished.reply)
        return finished

    async def settle(self, writes: Writes | None = None) -> Stop:
        """The run ended elsewhere (or was retried meanwhile): delete the job, record
        `writes` (a step that was stopped) while the job is still ours, and continue the run
        if it is live."""

        async def settle(conn: AsyncConnection[Any]) -> Stop:
            fence = await self.services.queue.complete_tx(conn, self.services.owner, self.job.lease)
            if writes and fence is Fence.KEPT:
                await runs.record(conn, self.run_id, writes)
            await runs.continue_run(conn, self.run_id, at=self.now())
            return Stop.ENDED

        return self._stopped(await self._in_transaction(settle))

    # --- inside a transaction ----------------------------------------------------------------

    async def _on_connection(self, work: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
        """`work` on a pooled connection, done again on a fresh one after a database error
        while the lease may still be ours: a blip must not make the job fail, and its replay
        repeat a step that happened. Every call here may be repeated (see each)."""

        async def once() -> T:
            async with self.services.pool.connection() as conn:
                return await work(conn)

        return await again_after_outage(
            once, within_seconds=self.services.queue.lease_seconds, outage=self._outage
        )

    async def _in_transaction(
        self, work: Callable[[AsyncConnection[Any]], Awaitable[T]]
    ) -> T | Stop:
        """`work` in one transaction (`_on_connection`'s retries); LOST when it found the
        lease lost, and rolled back."""

        async def transaction(conn: AsyncConnection[Any]) -> T | Stop:
            try:
                async with conn.transaction():
                    return await work(conn)
            except _Lost:
                return Stop.LOST

        return await self._on_connection(transaction)

    async def _lock_running(self, conn: AsyncConnection[Any]) -> bool:
        """Lock the run row (first, as pauses do); if it is no longer RUNNING, settle the
        job in this transaction and return False."""
        if await runs.status(conn, self.run_id, lock=True) is RunStatus.RUNNING:
            return True
        await self.services.queue.complete_tx(conn, self.services.owner, self.job.lease)
        await runs.continue_run(conn, self.run_id, at=self.now())
        return False

    async def _hold(self, conn: AsyncConnection[Any]) -> None:
        if (
            await self.services.queue.hold_tx(
                conn, self.services.owner, self.job.lease, now=self.now()
            )
            is Fence.LOST
        ):
            raise _Lost

    async def _complete(self, conn: AsyncConnection[Any]) -> None:
        if (
            await self.services.queue.complete_tx(conn, self.services.owner, self.job.lease)
            is Fence.LOST
        ):
            raise _Lost

    async def _pause(
        self,
        conn: AsyncConnection[Any],
        paused: StepRecord,
        writes: Writes,
        resume_at: datetime | None,
        expires: bool,
    ) -> None:
        """After the run row and the waitpoint are locked: record, pause the run, and hand
        the job over (to a continuation at `resume_at`)."""
        await self._complete(conn)
        if resume_at is not None:
            await runs.continue_run(conn, self.run_id, at=resume_at)
        await runs.record(conn, self.run_id, writes.adding(paused))
        await runs.pause_run(
            conn,
            self.run_id,
            expires=expires,
            ttl_seconds=self.paused_ttl_seconds,
            now=self.now(),
        )

    # --- after a commit ------------------------------------------------------------------------

    def _stopped(self, stop: Stop) -> Stop:
        """The job was deleted by the committed transaction: idle workers hear that a slot
        is free (a queued run of a limited project may start: a paused or rescheduled run
        holds none), and a paused run's sync callers elsewhere re-read it."""
        self._job_done(wake=True)
        if stop is Stop.PAUSED:
            self.services.run_events.publish(str(self.run_id))
        return stop

    def _job_done(self, *, wake: bool) -> None:
        self.services.settled(self.job.id)
        if wake:
            self.services.queue.wake()

    def _announce_reply(self, writes: Writes) -> None:
        if writes.responded:
            self._announce(Reply(RunStatus.RUNNING, writes.response, None, None))

    def _announce(self, reply: Reply | None) -> None:
        """Wake the run's sync callers after a commit: those in this process get `reply` (as
        committed) directly, and a NOTIFY tells other processes to read it. The NOTIFY is
        left out only when a caller here took the reply and nobody elsewhere can be
        waiting: a run that never paused has one sync caller, in the process that made it."""
        run = str(self.run_id)
        delivered = reply is not None and self.services.local_replies.deliver(run, reply)
        if not delivered or self.resumable:
            self.services.run_events.publish(run)


class _Lost(Exception):
    """The fence found the job held by another worker: the transaction is rolled back, and
    the method that opened it returns `Stop.LOST`."""
