"""LISTEN/NOTIFY hints: coalesced senders, a listener that survives reconnects."""

from __future__ import annotations

import asyncio
from typing import Any

from psycopg_pool import AsyncConnectionPool

from app.signals import Listener, Waker
from tests.integration.helpers import connect, eventually

CHANNEL = "sluice_test"


async def test_a_burst_of_wakes_is_coalesced_yet_the_last_one_is_delivered(
    pool: AsyncConnectionPool[Any], database_url: str
) -> None:
    listener = Listener(database_url, [CHANNEL])
    received: list[str | None] = []
    listener.subscribe(CHANNEL, received.append)
    task = asyncio.create_task(listener.run())
    waker = Waker(pool, CHANNEL)
    try:
        await asyncio.wait_for(listener.connected.wait(), 10)
        received.clear()  # the connect-time wake-up
        for _ in range(500):
            waker.wake()
        await waker.aclose()
        assert 1 <= waker.sent <= 2
        await eventually(lambda: _true_if(len(received) >= 1))

        # A wake after a NOTIFY was sent gets a NOTIFY of its own.
        sent = waker.sent
        waker.wake()
        await waker.aclose()
        assert waker.sent == sent + 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_listener_wakes_everyone_after_reconnecting(database_url: str) -> None:
    listener = Listener(database_url, [CHANNEL], reconnect_delay=0.01)
    event, unsubscribe = listener.event(CHANNEL)
    task = asyncio.create_task(listener.run())
    killer = await connect(database_url)
    try:
        await asyncio.wait_for(listener.connected.wait(), 10)
        event.clear()
        await killer.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query LIKE 'LISTEN%%' AND pid <> pg_backend_pid()"
        )
        # Notifications sent while it was down are lost: the reconnect wakes subscribers.
        await asyncio.wait_for(event.wait(), 10)
        event.clear()
        await asyncio.wait_for(listener.connected.wait(), 10)
        await killer.execute("SELECT pg_notify(%s, 'after')", (CHANNEL,))
        await asyncio.wait_for(event.wait(), 10)
        unsubscribe()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await killer.close()


async def _true_if(value: bool) -> bool:
    return value
