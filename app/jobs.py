"""The job queue: enqueue, claim, heartbeat, complete, retry/fail, rescue.

The only module that runs ``app/sql/jobs.sql``. Every call takes the connection to run on,
so an enqueue can commit together with the caller's rows (pass a connection inside
``conn.transaction()``); on an autocommit connection each call is its own transaction.

Invariants kept here, in the claim function of migration 0001 and the fence of 0006:

* One holder per job, fenced: a claim leases the job to one owner with a new attempt
  number. Heartbeat, completion, retry and failure act only where
  ``sluice_lease_held(job, owner, attempt)`` (running, this owner, this attempt); a write
  that matches nothing reports the lease as lost and changes nothing. A caller that ends
  its job together with its own writes does so inside its transaction (`complete_tx`,
  `hold_tx`) and gets KEPT or LOST back.
* Per-project concurrency never overshoots (see ``sluice_claim_jobs``).
* Time-dependent statements take ``now``; ``None`` means the database clock.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb

from app import queries
from app.backoff import RetryPolicy
from app.settings import Settings
from app.signals import Waker

log = logging.getLogger(__name__)

_SQL = queries.load("jobs")

NOTIFY_CHANNEL = "sluice_jobs"


@dataclass(frozen=True)
class NewJob:
    kind: str
    payload: Any = field(default_factory=dict)
    project_id: int | None = None
    run_id: UUID | None = None
    priority: int = 0
    """Lower runs first (0 is the default; negative values jump the queue)."""
    run_at: datetime | None = None
    """Not before this instant; ``None`` means now."""
    max_attempts: int | None = None
    """``None`` takes the queue's default."""
    idempotency_key: str | None = None
    """While a job with this key is queued or running, enqueueing it again returns that job."""


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    project_id: int | None
    run_id: UUID | None
    payload: Any
    priority: int
    run_at: datetime
    attempt: int
    max_attempts: int
    lease_owner: str
    lease_expires_at: datetime
    idempotency_key: str | None
    created_at: datetime

    @property
    def lease(self) -> Lease:
        return Lease(self.id, self.attempt)


class Lease(NamedTuple):
    """What fences a holder's writes: the job and the attempt it was claimed at."""

    job_id: int
    attempt: int


class Fence(enum.Enum):
    """What a fenced write inside the caller's transaction found."""

    KEPT = "kept"
    """The job is still ours at this attempt; the write happened."""
    LOST = "lost"
    """Another holder took the job over (or it is gone); nothing was written."""


class Enqueued(NamedTuple):
    job_id: int
    created: bool
    """False when an existing job with the same idempotency key was returned instead."""


class RetryOutcome(NamedTuple):
    requeued: bool
    dead: bool

    @property
    def lost(self) -> bool:
        return not (self.requeued or self.dead)


@dataclass(frozen=True)
class RescueReport:
    requeued: list[int]
    dead: list[int]

    @property
    def total(self) -> int:
        return len(self.requeued) + len(self.dead)


class EnqueueError(Exception):
    """A job could not be enqueued (its idempotency key kept changing hands)."""


@dataclass(frozen=True)
class Queue:
    lease_seconds: float = 30.0
    default_max_attempts: int = 5
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    waker: Waker | None = None
    """Sends the coalesced NOTIFY on `NOTIFY_CHANNEL` that wakes idle workers."""

    def wake(self) -> None:
        """Wake idle workers; call after committing a transaction that enqueued jobs."""
        if self.waker is not None:
            self.waker.wake()

    async def enqueue(
        self, conn: AsyncConnection[Any], job: NewJob, *, now: datetime | None = None
    ) -> Enqueued:
        (result,) = await self.enqueue_many(conn, [job], now=now)
        return result

    async def enqueue_many(
        self, conn: AsyncConnection[Any], jobs: Sequence[NewJob], *, now: datetime | None = None
    ) -> list[Enqueued]:
        """Insert jobs in one statement; results are in input order.

        On an autocommit connection the jobs are committed on return and idle workers are
        woken at once. Inside the caller's transaction nothing is visible until it commits:
        call `wake()` after the commit (a missed wake-up only costs a poll interval).
        """
        if not jobs:
            return []
        params = {
            "kinds": [j.kind for j in jobs],
            "project_ids": [j.project_id for j in jobs],
            "run_ids": [j.run_id for j in jobs],
            "payloads": [Jsonb(j.payload) for j in jobs],
            "priorities": [j.priority for j in jobs],
            "run_ats": [j.run_at for j in jobs],
            "max_attempts": [j.max_attempts or self.default_max_attempts for j in jobs],
            "idempotency_keys": [j.idempotency_key for j in jobs],
            "now": now,
        }
        for _ in range(5):
            async with conn.cursor() as cur:
                await cur.execute(_SQL["enqueue_jobs"], params)
                inserted: list[int | None] = [row[1] for row in await cur.fetchall()]
                missing = {
                    j.idempotency_key
                    for j, job_id in zip(jobs, inserted, strict=True)
                    if job_id is None and j.idempotency_key is not None
                }
                existing: dict[str, int] = {}
                if missing:
                    await cur.execute(
                        _SQL["find_jobs_by_idempotency_key"], {"keys": sorted(missing)}
                    )
                    existing = {key: job_id for key, job_id in await cur.fetchall()}
            if missing <= existing.keys():
                self._wake_if_committed(conn)
                return [
                    Enqueued(job_id, True)
                    if job_id is not None
                    else Enqueued(existing[str(j.idempotency_key)], False)
                    for j, job_id in zip(jobs, inserted, strict=True)
                ]
            # The holder of a key finished between our insert and our look-up: insert again.
        raise EnqueueError("idempotency keys kept changing hands; gave up after 5 tries")

    async def claim(
        self,
        conn: AsyncConnection[Any],
        owner: str,
        limit: int,
        *,
        now: datetime | None = None,
    ) -> list[Job]:
        """Lease up to `limit` ready jobs to `owner` in one round trip."""
        if limit <= 0:
            return []
        async with conn.cursor(row_factory=class_row(Job)) as cur:
            await cur.execute(
                _SQL["claim_jobs"],
                {"owner": owner, "limit": limit, "lease_seconds": self.lease_seconds, "now": now},
            )
            return await cur.fetchall()

    async def heartbeat(
        self,
        conn: AsyncConnection[Any],
        owner: str,
        leases: Sequence[Lease],
        *,
        now: datetime | None = None,
    ) -> list[Lease]:
        """Renew all of `owner`'s leases in one statement; returns the leases it has lost."""
        lost, _kept = await self._fenced(
            conn, "renew_leases", owner, leases, lease_seconds=self.lease_seconds, now=now
        )
        return lost

    async def complete(
        self, conn: AsyncConnection[Any], owner: str, leases: Sequence[Lease]
    ) -> list[Lease]:
        """Delete finished jobs in one statement; returns the leases that were lost, whose
        completion was refused because another holder took the job over."""
        lost, _kept = await self._fenced(conn, "complete_jobs", owner, leases)
        return lost

    async def complete_tx(self, conn: AsyncConnection[Any], owner: str, lease: Lease) -> Fence:
        """Delete the job inside the caller's transaction, which records what the job did:
        the job's end commits with it, or (LOST) the caller must roll back."""
        return Fence.LOST if await self.complete(conn, owner, [lease]) else Fence.KEPT

    async def hold_tx(
        self,
        conn: AsyncConnection[Any],
        owner: str,
        lease: Lease,
        *,
        now: datetime | None = None,
    ) -> Fence:
        """Renew the lease inside the caller's transaction: its writes commit only while the
        job is still ours (LOST: roll back)."""
        return Fence.LOST if await self.heartbeat(conn, owner, [lease], now=now) else Fence.KEPT

    async def release(
        self,
        conn: AsyncConnection[Any],
        owner: str,
        leases: Sequence[Lease],
        *,
        now: datetime | None = None,
    ) -> list[Lease]:
        """Re-queue unfinished jobs for immediate pick-up (a graceful stop); the attempt
        stays counted. Returns the leases that were already lost."""
        lost, released = await self._fenced(conn, "release_jobs", owner, leases, now=now)
        if released:
            self._wake_if_committed(conn)
        return lost

    def _wake_if_committed(self, conn: AsyncConnection[Any]) -> None:
        if conn.info.transaction_status == TransactionStatus.IDLE:
            self.wake()

    @staticmethod
    async def _fenced(
        conn: AsyncConnection[Any],
        query: str,
        owner: str,
        leases: Sequence[Lease],
        **params: Any,
    ) -> tuple[list[Lease], set[int]]:
        """Run a lease-fenced statement over `leases`; returns the lost leases (logged) and
        the ids of the jobs it acted on."""
        if not leases:
            return [], set()
        cur = await conn.execute(_SQL[query], {**_lease_params(owner, leases), **params})
        kept = {row[0] for row in await cur.fetchall()}
        lost = [lease for lease in leases if lease.job_id not in kept]
        for lease in lost:
            log.warning("%s: lease lost, job %s attempt %s (owner %s)", query, *lease, owner)
        return lost, kept

    async def retry(
        self,
        conn: AsyncConnection[Any],
        owner: str,
        lease: Lease,
        error: str,
        *,
        delay_seconds: float | None = None,
        now: datetime | None = None,
    ) -> RetryOutcome:
        """Re-queue a failed attempt after a backoff, or move it to dead_jobs when this was
        its last attempt."""
        delay = self.retry_policy.delay(lease.attempt) if delay_seconds is None else delay_seconds
        return await self._settle(conn, owner, lease, error, final=False, delay=delay, now=now)

    async def fail(
        self,
        conn: AsyncConnection[Any],
        owner: str,
        lease: Lease,
        error: str,
        *,
        now: datetime | None = None,
    ) -> RetryOutcome:
        """Move the job to dead_jobs at once, whatever attempts it has left."""
        return await self._settle(conn, owner, lease, error, final=True, delay=0.0, now=now)

    async def _settle(
        self,
        conn: AsyncConnection[Any],
        owner: str,
        lease: Lease,
        error: str,
        *,
        final: bool,
        delay: float,
        now: datetime | None,
    ) -> RetryOutcome:
        cur = await conn.execute(
            _SQL["retry_job"],
            {
                "job_id": lease.job_id,
                "attempt": lease.attempt,
                "owner": owner,
                "error": error,
                "final": final,
                "delay_seconds": delay,
                "now": now,
            },
        )
        row = await cur.fetchone()
        assert row is not None
        outcome = RetryOutcome(requeued=row[0] > 0, dead=row[1] > 0)
        if outcome.lost:
            log.warning("failure dropped, lease lost: job %s attempt %s (owner %s)", *lease, owner)
        return outcome

    async def rescue_expired(
        self, conn: AsyncConnection[Any], *, limit: int = 1000, now: datetime | None = None
    ) -> RescueReport:
        """One maintenance pass: re-queue (or bury) up to `limit` jobs whose lease expired."""
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(_SQL["rescue_expired_jobs"], {"limit": limit, "now": now})
            rows = await cur.fetchall()
        report = RescueReport(
            requeued=sorted(r["job_id"] for r in rows if r["outcome"] == "requeued"),
            dead=sorted(r["job_id"] for r in rows if r["outcome"] == "dead"),
        )
        if report.total:
            log.warning(
                "rescued %d job(s) with expired leases: %d re-queued, %d dead",
                report.total,
                len(report.requeued),
                len(report.dead),
            )
        return report


def queue_from(settings: Settings, waker: Waker | None = None) -> Queue:
    """The queue as configured (lease, attempts, retry backoff)."""
    return Queue(
        lease_seconds=settings.lease_ttl_seconds,
        default_max_attempts=settings.job_max_attempts,
        retry_policy=RetryPolicy(settings.retry_base_seconds, settings.retry_max_seconds),
        waker=waker,
    )


def _lease_params(owner: str, leases: Sequence[Lease]) -> dict[str, Any]:
    return {
        "owner": owner,
        "job_ids": [lease.job_id for lease in leases],
        "attempts": [lease.attempt for lease in leases],
    }
