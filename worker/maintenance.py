"""The rescuer: one elected worker re-queues jobs whose lease expired, and times out runs.

Invariant (fast, automatic crash recovery): a job whose holder died is back in the queue
(or dead, once its attempts are spent) within the lease TTL plus one maintenance tick. Only
the leader runs the pass, on the connection that holds leadership; when the leader dies its
session lock goes with it and another worker takes the role on its next tick.

The same pass times out runs past ``SLUICE_RUN_TIMEOUT_SECONDS`` of active time and paused
runs past ``SLUICE_PAUSED_RUN_TTL``, and reports them (`on_expired`) so that their sync
callers are answered and their executions stopped; it fires the schedules' due ticks
(`app.schedules.firing`: each tick one run, by a database key, whoever leads), and it
forgets webhook idempotency keys and schedule ticks older than their windows. While the
database is away the pass fails quietly (one line when it goes, one when it is back) and
the next tick tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from datetime import datetime

import psycopg

from app import run_log
from app.db import Outage
from app.flows import control, runs
from app.jobs import Queue, RescueReport
from app.locks import Leadership
from app.schedules import firing

log = logging.getLogger(__name__)

ROLE = "maintenance"
RESCUE_BATCH = 1000


class Maintenance:
    def __init__(
        self,
        queue: Queue,
        leadership: Leadership,
        interval_seconds: float,
        *,
        on_expired: Callable[[list[runs.Expired]], None] | None = None,
        key_window_seconds: float | None = None,
        schedules: control.RunBudget | None = None,
    ) -> None:
        """`key_window_seconds`: webhook idempotency keys older than this are deleted (None:
        kept). `schedules`: the budget of the runs that schedules start (None: this pass
        fires no schedule)."""
        self._queue = queue
        self._leadership = leadership
        self._interval = interval_seconds
        self._on_expired = on_expired
        self._key_window = key_window_seconds
        self._schedules = schedules
        self._outage = Outage("maintenance", log)

    async def tick(self, *, now: datetime | None = None) -> RescueReport | None:
        """One pass if this worker leads: None when it does not."""
        if not await self._leadership.ensure():
            return None
        requeued: list[int] = []
        dead: list[int] = []
        while True:
            report = await self._queue.rescue_expired(
                self._leadership.connection, limit=RESCUE_BATCH, now=now
            )
            requeued += report.requeued
            dead += report.dead
            if report.total < RESCUE_BATCH:
                break
        await self.expire_runs(now=now)
        await self.fire_schedules(now=now)
        await self.forget_keys(now=now)
        return RescueReport(requeued=requeued, dead=dead)

    async def fire_schedules(self, *, now: datetime | None = None) -> list[firing.Fired]:
        if self._schedules is None:
            return []
        conn = self._leadership.connection
        fired = await firing.fire_due(conn, self._schedules, now=now)
        for tick in fired:
            if tick.run_id is not None:
                accepted = run_log.Transition.ACCEPTED
                run_log.transition(accepted, tick.run_id, flow_id=tick.flow_id, via="schedule")
            elif tick.outcome == "cap":
                log.warning(
                    "schedule %r of flow %s: tick %s skipped, the project is at its cap "
                    "of live runs",
                    tick.rule,
                    tick.flow_id,
                    tick.tick_at.isoformat(),
                )
        if any(tick.run_id is not None for tick in fired):
            self._queue.wake()
        window = firing.TICK_WINDOW_SECONDS
        while await firing.forget_ticks(conn, window, limit=RESCUE_BATCH, now=now) == RESCUE_BATCH:
            pass
        return fired

    async def forget_keys(self, *, now: datetime | None = None) -> int:
        if self._key_window is None:
            return 0
        forgotten = 0
        while True:
            batch = await control.forget_keys(
                self._leadership.connection, self._key_window, limit=RESCUE_BATCH, now=now
            )
            forgotten += batch
            if batch < RESCUE_BATCH:
                return forgotten

    async def expire_runs(self, *, now: datetime | None = None) -> list[runs.Expired]:
        expired: list[runs.Expired] = []
        while True:
            batch = await runs.expire_runs(self._leadership.connection, limit=RESCUE_BATCH, now=now)
            expired += batch
            if len(batch) < RESCUE_BATCH:
                break
        for run in expired:
            run_log.transition(
                run_log.Transition.TIMED_OUT,
                run.run_id,
                flow=run.flow_name,
                project=run.project_id,
                was=str(run.was),
                error=run.error,
            )
        if expired and self._on_expired is not None:
            self._on_expired(expired)
        return expired

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set; the interval is jittered so workers do not align."""
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                except (psycopg.OperationalError, OSError) as exc:
                    self._outage.failed(exc)
                    await self._leadership.release()
                except Exception:
                    log.exception("maintenance pass failed; retrying next tick")
                    await self._leadership.release()
                else:
                    self._outage.ok()
                delay = self._interval * random.uniform(0.8, 1.2)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
        finally:
            await self.close()

    async def close(self) -> None:
        """Step down (if leading) and close the leadership connection."""
        await self._leadership.release()
