"""The faults, one per scenario. Each injects its fault into a running system and returns
the window it lasted: from the first blow until what it broke is given back (Postgres
accepts connections again, the killed process is started again, the last kill is done).

The pauses between blows are part of each scenario (Postgres down for 15 s, kills 2 s
apart), not waits for another process; what must have happened before going on (a process
exited, a restarted worker registered) is awaited on the state itself.
"""

from __future__ import annotations

import asyncio
import datetime
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection

from ops.chaos.postgres import Postgres
from ops.chaos.processes import STOP_SECONDS, Cluster, Process

SLUICE_APPLICATIONS = "sluice"
"""The prefix of the application name of every Sluice connection (pools, listener, leader)."""
EXIT_SECONDS = 15.0


@dataclass(frozen=True)
class FaultOptions:
    pg_down_seconds: float = 15.0
    backend_kills: int = 5
    backend_kill_interval_seconds: float = 2.0
    worker_kill_seconds: float = 60.0
    worker_kill_pause_seconds: tuple[float, float] = (1.0, 3.0)


@dataclass
class Target:
    """What a fault acts on."""

    postgres: Postgres
    cluster: Cluster
    database: str
    database_url: str
    rng: random.Random


@dataclass
class Window:
    started: float
    """`time.monotonic()` at the first blow; `ended` once the last is over."""
    ended: float = 0.0
    ended_at: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.UTC))
    """The wall-clock `ended`, to compare with the database's timestamps (same host)."""
    notes: dict[str, Any] = field(default_factory=dict)

    def end(self) -> Window:
        self.ended = time.monotonic()
        self.ended_at = datetime.datetime.now(datetime.UTC)
        return self


Fault = Callable[[Target, FaultOptions], Awaitable[Window]]


def _begin() -> Window:
    return Window(started=time.monotonic())


async def pg_restart(target: Target, options: FaultOptions) -> Window:
    window = _begin()
    await target.postgres.restart_immediate()
    return window.end()


async def backend_kill(target: Target, options: FaultOptions) -> Window:
    window = _begin()
    killed = []
    for n in range(options.backend_kills):
        if n:
            await asyncio.sleep(options.backend_kill_interval_seconds)  # the scenario's pace
        killed.append(
            await target.postgres.terminate_backends(target.database, SLUICE_APPLICATIONS)
        )
    window.notes["backends_killed"] = killed
    return window.end()


async def pg_down(target: Target, options: FaultOptions) -> Window:
    window = _begin()
    await target.postgres.stop("fast")
    await asyncio.sleep(options.pg_down_seconds)  # the outage itself
    await target.postgres.start()
    return window.end()


async def _restart(worker: Process, target: Target, observer: AsyncConnection[Any]) -> None:
    worker.start()
    await target.cluster.worker_ready(worker, observer)


async def worker_kill(target: Target, options: FaultOptions) -> Window:
    """SIGKILL a random worker, start it again, wait until it has registered, and pause
    for the rest of a random 1 to 3 s since the kill; again until the time is up."""
    async with await _observer(target) as observer:
        window = _begin()
        deadline = window.started + options.worker_kill_seconds
        kills = 0
        while time.monotonic() < deadline:
            killed_at = time.monotonic()
            worker = target.rng.choice(target.cluster.workers)
            worker.send(signal.SIGKILL)
            await worker.exited(within=EXIT_SECONDS)
            kills += 1
            await _restart(worker, target, observer)
            pause = target.rng.uniform(*options.worker_kill_pause_seconds)
            remaining = min(killed_at + pause, deadline) - time.monotonic()
            if remaining > 0:
                await asyncio.sleep(remaining)  # the scenario's pace
        window.notes["kills"] = kills
        return window.end()


async def worker_term(target: Target, options: FaultOptions) -> Window:
    """SIGTERM each worker in turn; once it has drained and exited, start it again."""
    async with await _observer(target) as observer:
        window = _begin()
        exits, drains = [], []
        for worker in target.cluster.workers:
            signalled = time.monotonic()
            worker.send(signal.SIGTERM)
            exits.append(await worker.exited(within=STOP_SECONDS))
            drains.append(round(time.monotonic() - signalled, 3))
            await _restart(worker, target, observer)
        window.notes["exit_codes"] = exits
        window.notes["drain_seconds"] = drains
        return window.end()


async def app_kill(target: Target, options: FaultOptions) -> Window:
    window = _begin()
    app = target.cluster.app
    app.send(signal.SIGKILL)
    await app.exited(within=EXIT_SECONDS)
    app.start()  # its start-up is part of the recovery that the load measures
    return window.end()


async def _observer(target: Target) -> AsyncConnection[Any]:
    return await AsyncConnection.connect(
        target.database_url, autocommit=True, application_name="chaos-observer"
    )
