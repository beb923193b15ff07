"""Idle consumers wake on NOTIFY after an enqueue commits, and poll when it is lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from app.jobs import NOTIFY_CHANNEL, NewJob, Queue
from app.signals import Listener, Waker, Wakeup
from tests.integration.helpers import connect


@pytest.fixture
async def listener(database_url: str) -> AsyncIterator[Listener]:
    listener = Listener(database_url, [NOTIFY_CHANNEL])
    task = asyncio.create_task(listener.run())
    await asyncio.wait_for(listener.connected.wait(), 10)
    yield listener
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_enqueue_on_autocommit_wakes_an_idle_consumer(
    pool: AsyncConnectionPool[Any], listener: Listener, database_url: str
) -> None:
    queue = Queue(waker=Waker(pool, NOTIFY_CHANNEL))
    wakeup = Wakeup(listener, NOTIFY_CHANNEL, poll_seconds=30)
    async with await connect(database_url) as consumer:
        wakeup.arm()
        assert await queue.claim(consumer, "w", 1) == []
        waiting = asyncio.create_task(wakeup.wait())
        async with pool.connection() as producer:
            await queue.enqueue(producer, NewJob("hello"))
        assert await asyncio.wait_for(waiting, 10), "woken by the poll, not the NOTIFY"
        (job,) = await queue.claim(consumer, "w", 1)
    assert job.kind == "hello"
    wakeup.close()


async def test_enqueue_inside_a_transaction_wakes_only_after_commit(
    pool: AsyncConnectionPool[Any], listener: Listener
) -> None:
    waker = Waker(pool, NOTIFY_CHANNEL)
    queue = Queue(waker=waker)
    async with pool.connection() as conn:
        async with conn.transaction():
            await queue.enqueue(conn, NewJob("with-the-run"))
        await waker.aclose()
        assert waker.sent == 0, "woke workers before the jobs were visible"
        queue.wake()
        await waker.aclose()
        assert waker.sent == 1


async def test_a_lost_notification_costs_one_poll_interval(
    pool: AsyncConnectionPool[Any], listener: Listener, database_url: str
) -> None:
    queue = Queue()  # no waker: every NOTIFY is "lost"
    wakeup = Wakeup(listener, NOTIFY_CHANNEL, poll_seconds=0.2)
    async with await connect(database_url) as consumer:
        wakeup.arm()
        assert await queue.claim(consumer, "w", 1) == []
        async with pool.connection() as producer:
            await queue.enqueue(producer, NewJob("unannounced"))
        assert not await wakeup.wait(), "there was no NOTIFY to be woken by"
        wakeup.arm()
        (job,) = await queue.claim(consumer, "w", 1)
    assert job.kind == "unannounced"
    wakeup.close()
