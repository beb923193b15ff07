"""The Sluice processes under test: one app (`APP`) and two workers (`WORKER`), each a real
`sluice serve` with its output in a log file, killed, stopped and restarted by pid.

Their settings are those of the end-to-end tests (`tests.e2e.flow_helpers.serve_env`: a
2-second lease, heartbeats and maintenance every half second, small pools, private HTTP
targets allowed), so that recovery is a matter of seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection

from ops.ports import free_port
from tests.e2e.flow_helpers import SERVE, app_ready, serve_env, worker_ready
from tests.integration.helpers import eventually

STOP_SECONDS = 45.0
"""A SIGTERM lets in-flight jobs finish (the grace period is 30 s by default)."""


@dataclass
class Process:
    """One `sluice serve` (its role is in `env`); `start` again after it ended to restart it."""

    name: str
    env: dict[str, str]
    log_dir: Path
    popen: subprocess.Popen[str] | None = None
    starts: int = 0
    signalled: bool = False
    unasked_exits: list[int] = field(default_factory=list)
    """Exit statuses of the generations that ended though nobody signalled them."""

    def start(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            raise RuntimeError(f"{self.name} is running")
        self._reap()
        self.starts += 1
        log = self.log_dir / f"{self.name}.{self.starts}.log"
        with log.open("w") as output:
            self.popen = subprocess.Popen(
                SERVE,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
                # Its own session: a Ctrl-C meant for the tool does not reach it.
                start_new_session=True,
            )
        self.signalled = False

    @property
    def pid(self) -> int:
        return self.running_popen().pid

    def running_popen(self) -> subprocess.Popen[str]:
        if self.popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.popen

    def send(self, signum: signal.Signals) -> None:
        process = self.running_popen()
        if process.poll() is None:
            self.signalled = True
            process.send_signal(signum)

    async def exited(self, *, within: float) -> int:
        """Its exit status, once it has exited."""
        process = self.running_popen()

        async def ended() -> bool:
            return process.poll() is not None

        await eventually(ended, within=within)
        return process.returncode

    def died_unasked(self) -> bool:
        """Whether any generation exited though nobody signalled it."""
        current = self.popen is not None and self.popen.poll() is not None and not self.signalled
        return current or bool(self.unasked_exits)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still running after `STOP_SECONDS`."""
        if self.popen is None:
            return
        self.send(signal.SIGTERM)
        try:
            await self.exited(within=STOP_SECONDS)
        except TimeoutError:
            self.send(signal.SIGKILL)
            await self.exited(within=STOP_SECONDS)
        self._reap()

    def _reap(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            if not self.signalled:
                self.unasked_exits.append(self.popen.returncode)
            self.popen = None


@dataclass
class Cluster:
    """The app and the workers, on one database."""

    app: Process
    workers: list[Process]
    base_url: str

    @property
    def processes(self) -> list[Process]:
        return [self.app, *self.workers]

    async def app_ready(self) -> None:
        await app_ready(self.app.running_popen(), self.base_url)

    async def worker_ready(self, worker: Process, observer: AsyncConnection[Any]) -> None:
        await worker_ready(worker.running_popen(), observer)

    def died_unasked(self) -> list[str]:
        return [process.name for process in self.processes if process.died_unasked()]


@contextlib.asynccontextmanager
async def running_cluster(
    database_url: str, observer: AsyncConnection[Any], root: Path, log_dir: Path, workers: int = 2
) -> AsyncIterator[Cluster]:
    """Start the app and `workers` workers (their data directories under `root`, their logs
    in `log_dir`), yield them once all are ready, and stop them all."""
    port = free_port()
    await asyncio.to_thread(log_dir.mkdir, parents=True, exist_ok=True)

    def process(name: str, role: str, **settings: str) -> Process:
        env = serve_env(database_url, role, root / name, SLUICE_LOG_LEVEL="WARNING", **settings)
        return Process(name, env, log_dir)

    cluster = Cluster(
        app=process("app", "app", SLUICE_PORT=str(port)),
        workers=[process(f"worker-{n}", "worker") for n in range(1, workers + 1)],
        base_url=f"http://127.0.0.1:{port}",
    )
    try:
        for each in cluster.processes:
            each.start()
        await asyncio.gather(
            cluster.app_ready(), *(cluster.worker_ready(w, observer) for w in cluster.workers)
        )
        yield cluster
    finally:
        await asyncio.gather(*(each.stop() for each in cluster.processes))
