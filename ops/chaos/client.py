"""The load: a careful webhook client, sending events at a steady rate.

Each event is one logical webhook with an ``Idempotency-Key`` of its own (a uuid). The client
sends it to ``POST /webhooks/{flow_id}`` until it gets an answer it can act on: a 202 ends it
(accepted, with the run id), a 503 or a lost answer (a connection error, a timeout) is retried
with the same key after a bounded, jittered backoff (at least the ``Retry-After`` it was
given, within the cap), and any other status ends it refused. An event that is still not
answered `give_up_seconds` after it arose is given up. At most `CONNECTIONS` requests are in
flight at once. Every attempt is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from dataclasses import dataclass, field

import httpx

from app import backoff

IDEMPOTENCY_HEADER = "Idempotency-Key"
TIMEOUT = "timeout"
CONNECTION_ERROR = "connection error"


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 0.1
    cap_seconds: float = 2.0
    timeout_seconds: float = 5.0
    """Per attempt: connect, send, and each read."""
    give_up_seconds: float = 60.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """How long to wait after failed attempt number `attempt` (1-based): the service's
        own backoff (equal jitter), at least the Retry-After given, never over the cap."""
        delay = backoff.RetryPolicy(self.base_seconds, self.cap_seconds).delay(attempt, rng)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap_seconds))
        return delay


@dataclass(frozen=True)
class Attempt:
    sent: float
    """`time.monotonic()` when it was sent; `answered` when its outcome came."""
    answered: float
    outcome: str
    """The HTTP status as text, or TIMEOUT, or CONNECTION_ERROR."""


@dataclass
class Event:
    key: str
    created: float
    """`time.monotonic()` when the event arose (its first attempt may wait for a free
    connection); its latency and its patience count from here."""
    attempts: list[Attempt] = field(default_factory=list)
    run_id: str | None = None
    gave_up: bool = False

    @property
    def accepted_at(self) -> float | None:
        return self.attempts[-1].answered if self.run_id is not None else None


def _retry_after(response: httpx.Response) -> float | None:
    with contextlib.suppress(KeyError, ValueError):
        return max(0.0, float(response.headers["retry-after"]))
    return None


CONNECTIONS = 64
"""Requests in flight at once: a careful client bounds them (a request waiting for a free
connection is not yet an attempt, so it cannot time out)."""


class Client:
    def __init__(
        self, http: httpx.AsyncClient, flow_id: str, policy: RetryPolicy, rng: random.Random
    ) -> None:
        self._http = http
        self._path = f"/webhooks/{flow_id}"
        self._policy = policy
        self._rng = rng
        self._connections = asyncio.Semaphore(CONNECTIONS)

    async def send(self, event: Event, body: object) -> None:
        """Deliver `event` as far as a careful client can; the attempts land in it."""
        while True:
            outcome, retry_after = await self._attempt(event, body)
            if outcome == "202":
                return
            if outcome not in ("503", TIMEOUT, CONNECTION_ERROR):
                return
            delay = self._policy.delay(len(event.attempts), retry_after, self._rng)
            if time.monotonic() + delay - event.created > self._policy.give_up_seconds:
                event.gave_up = True
                return
            await asyncio.sleep(delay)  # the backoff itself

    async def _attempt(self, event: Event, body: object) -> tuple[str, float | None]:
        """One request: its outcome and the Retry-After it was given."""
        async with self._connections:
            sent = time.monotonic()
            retry_after: float | None = None
            try:
                response = await self._http.post(
                    self._path, json=body, headers={IDEMPOTENCY_HEADER: event.key}
                )
            except httpx.TimeoutException:
                outcome = TIMEOUT
            except httpx.TransportError:
                outcome = CONNECTION_ERROR
            else:
                outcome = str(response.status_code)
                retry_after = _retry_after(response)
                if outcome == "202":
                    event.run_id = str(response.json()["run_id"])
            event.attempts.append(Attempt(sent, time.monotonic(), outcome))
        return outcome, retry_after


def http_client(base_url: str, policy: RetryPolicy) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=policy.timeout_seconds,
        limits=httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS),
    )


class Load:
    """Events at `rate` per second from `start` until `stop` is set."""

    def __init__(self, client: Client, rate: float) -> None:
        self._client = client
        self._interval = 1.0 / rate
        self.events: list[Event] = []
        self._sending: list[asyncio.Task[None]] = []

    async def run(self, stop: asyncio.Event) -> None:
        """Send until `stop`; return once every event sent has ended."""
        next_at = time.monotonic()
        while not stop.is_set():
            event = Event(key=str(uuid.uuid4()), created=time.monotonic())
            self.events.append(event)
            self._sending.append(
                asyncio.create_task(self._client.send(event, {"n": len(self.events)}))
            )
            next_at += self._interval
            # The arrival schedule of the load, not a wait for another process.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*self._sending)

    async def ended(self, created_by: float) -> None:
        """Return once every event that arose by `created_by` has ended (accepted, refused
        or given up)."""
        pending = [
            task
            for event, task in zip(self.events, self._sending, strict=True)
            if event.created <= created_by
        ]
        await asyncio.gather(*pending)
