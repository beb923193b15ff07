"""Batches job completions: many finished jobs, one DELETE.

Invariant: `complete()` returns only after the statement that deleted the job has committed
(or reports the lease lost), so a caller that shields it never loses a finished result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from app.jobs import Lease, Queue

log = logging.getLogger(__name__)


class Completer:
    def __init__(self, pool: AsyncConnectionPool[Any], queue: Queue, owner: str) -> None:
        self._pool = pool
        self._queue = queue
        self._owner = owner
        self._pending: asyncio.Queue[tuple[Lease, asyncio.Future[bool]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def complete(self, lease: Lease) -> bool:
        """Complete one job in the next batch; False when the lease was lost."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.put_nowait((lease, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush_all())
        return await future

    async def _flush_all(self) -> None:
        while not self._pending.empty():
            batch = [self._pending.get_nowait() for _ in range(self._pending.qsize())]
            try:
                async with self._pool.connection() as conn:
                    lost = set(await self._queue.complete(conn, self._owner, [b[0] for b in batch]))
            except (psycopg.Error, OSError) as exc:
                # Not committed: the jobs stay running under our lease, and are retried by
                # the caller or rescued once the lease expires.
                for _lease, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for lease, future in batch:
                if not future.done():
                    future.set_result(lease not in lost)

    async def aclose(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
