"""LISTEN/NOTIFY as a wake-up hint: one listening connection per process, coalesced senders.

Invariant: NOTIFY is a hint, never a requirement. A waiter clears its event, then reads the
database, then waits on the event with a (jittered) poll timeout, so a notification that is
lost (connection drop, crash between commit and NOTIFY) costs latency, never correctness.
After the listening connection is re-established every subscriber is woken, because
notifications sent while it was down are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from app import queries
from app.db import Outage

log = logging.getLogger(__name__)

_SQL = queries.load("signals")

Callback = Callable[[str | None], None]
"""Called with a notification's payload, or None after a reconnect (anything may have
happened)."""


class Listener:
    """A dedicated LISTEN connection fanning notifications out to callbacks."""

    def __init__(self, conninfo: str, channels: list[str], *, reconnect_delay: float = 0.5) -> None:
        self._conninfo = conninfo
        self._channels = list(channels)
        self._callbacks: dict[str, list[Callback]] = defaultdict(list)
        self._reconnect_delay = reconnect_delay
        self.connected = asyncio.Event()

    def subscribe(self, channel: str, callback: Callback) -> Callable[[], None]:
        """Call `callback` on every notification of `channel`; returns the unsubscriber."""
        if channel not in self._channels:
            raise ValueError(f"channel {channel!r} is not listened to")
        self._callbacks[channel].append(callback)
        return lambda: self._callbacks[channel].remove(callback)

    def event(self, channel: str) -> tuple[asyncio.Event, Callable[[], None]]:
        """An event set on every notification of `channel` (and after reconnects)."""
        event = asyncio.Event()
        return event, self.subscribe(channel, lambda _payload: event.set())

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after failures."""
        outage = Outage("listener", log)
        while True:
            try:
                async with await AsyncConnection.connect(
                    self._conninfo, autocommit=True, application_name="sluice-listener"
                ) as conn:
                    for channel in self._channels:
                        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self.connected.set()
                    outage.ok()
                    self._dispatch_all(None)
                    async for notify in conn.notifies():
                        self._dispatch(notify.channel, notify.payload)
            except psycopg.OperationalError as exc:
                outage.failed(exc)
            finally:
                self.connected.clear()
            await asyncio.sleep(self._reconnect_delay)

    def _dispatch_all(self, payload: str | None) -> None:
        for channel in self._channels:
            self._dispatch(channel, payload)

    def _dispatch(self, channel: str, payload: str | None) -> None:
        for callback in list(self._callbacks.get(channel, ())):
            try:
                callback(payload)
            except Exception:
                log.exception("listener callback for %r failed", channel)


class Wakeup:
    """What an idle consumer waits on: a notification, or failing that a jittered poll.

    Use it as listen-first-then-read: `arm()` before reading the database, then `wait()`
    if the read found nothing. A notification arriving between the two is not lost.
    """

    def __init__(self, listener: Listener, channel: str, poll_seconds: float) -> None:
        self._event, self._unsubscribe = listener.event(channel)
        self._poll_seconds = poll_seconds

    def arm(self) -> None:
        self._event.clear()

    def notify(self) -> None:
        """Wake the waiter from this process, as a notification would."""
        self._event.set()

    async def wait(self) -> bool:
        """True when woken by a notification, False when the poll interval ran out."""
        timeout = self._poll_seconds * random.uniform(0.8, 1.2)
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self._unsubscribe()


class Publisher:
    """Sends ``NOTIFY channel, 'a,b,c'`` after commits: payloads published while a NOTIFY is
    in flight are merged into the next one (comma-separated, up to the payload limit).

    Invariant: every `publish()` is followed by a NOTIFY sent after the call, so a listener
    can read what the caller committed before publishing. A burst of commits costs a NOTIFY
    per round trip, not one per commit, and commits never queue on Postgres' NOTIFY lock.
    Payloads must not contain commas.
    """

    MAX_PAYLOAD = 7900  # Postgres refuses payloads of 8000 bytes or more.

    def __init__(self, pool: AsyncConnectionPool[Any], channel: str) -> None:
        self._pool = pool
        self._channel = channel
        self._pending: dict[str, None] = {}
        self._task: asyncio.Task[None] | None = None
        self.sent = 0

    def publish(self, payload: str) -> None:
        self._pending[payload] = None
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._send())

    async def _send(self) -> None:
        while self._pending:
            batch: list[str] = []
            size = 0
            for payload in list(self._pending):
                if batch and size + len(payload) + 1 > self.MAX_PAYLOAD:
                    break
                batch.append(payload)
                size += len(payload) + 1
                del self._pending[payload]
            try:
                async with self._pool.connection() as conn:
                    await conn.execute(
                        _SQL["notify"], {"channel": self._channel, "payload": ",".join(batch)}
                    )
                self.sent += 1
            except psycopg.Error as exc:
                # A lost notification costs a poll interval; the waiters re-check on their own.
                log.warning("NOTIFY %s failed: %s", self._channel, exc)

    async def aclose(self) -> None:
        """Wait for pending notifications to be sent."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class Waker(Publisher):
    """Wakes the listeners of a channel after commits: a `Publisher` of an empty payload,
    so concurrent wake-ups merge into one NOTIFY — unless `local`, a consumer in this same
    process, takes the wake-up (it returns True when it had room and was woken)."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        channel: str,
        *,
        local: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(pool, channel)
        self._local = local

    def wake(self) -> None:
        if self._local is not None and self._local():
            return
        self.publish("")


class Watch(asyncio.Event):
    """An event for one key; `value` is what an in-process `deliver()` handed over, if any."""

    value: Any = None


class Watchers:
    """Per-key events fed by a comma-separated payload channel (run ids, say).

    `watch(key)` returns an event set whenever a notification names the key, and (with
    `wake_on_reconnect`, for waiters that re-check the database) after a listener reconnect,
    when anything may have happened. `deliver(key, value)` is the in-process shortcut: a
    producer in the same process hands over what it committed, sparing the waiter a read.
    """

    def __init__(self, *, wake_on_reconnect: bool = True) -> None:
        self._events: dict[str, set[Watch]] = defaultdict(set)
        self._wake_on_reconnect = wake_on_reconnect

    def deliver(self, key: str, value: Any) -> bool:
        """Wake the watchers of `key` with `value`; False when nobody here watches it."""
        watches = self._events.get(key)
        if not watches:
            return False
        for watch in watches:
            watch.value = value
            watch.set()
        return True

    def on_notify(self, payload: str | None) -> None:
        if payload is None:
            if not self._wake_on_reconnect:
                return
            for events in self._events.values():
                for event in events:
                    event.set()
            return
        for key in payload.split(","):
            for event in self._events.get(key, ()):
                event.set()

    @contextlib.contextmanager
    def watch(self, key: str) -> Iterator[Watch]:
        event = Watch()
        self._events[key].add(event)
        try:
            yield event
        finally:
            events = self._events.get(key)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._events[key]
