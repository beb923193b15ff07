"""The smoke test's own `sluice serve`, and the resident memory of a server process.

The server runs the default role (app and worker in one process) on an embedded PostgreSQL
in a temporary directory (or, where the caller sets SLUICE_DATABASE_URL — platforms without
the embedded server — on that database), on a free port, with a random admin key and none of
the caller's other SLUICE_* settings. It is stopped with SIGTERM; its embedded PostgreSQL
stops when the last process using it exits, which the `stop` step checks (and enforces)
before the directory is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from ops.ports import free_port
from ops.smoke.report import Failure, Report

START_SECONDS = 120.0
"""A first start creates the database cluster (initdb) and migrates it."""
STOP_SECONDS = 60.0
POSTGRES_STOP_SECONDS = 30.0
LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class LocalServer:
    url: str
    admin_key: str
    pid: int


@contextlib.asynccontextmanager
async def local_server(report: Report) -> AsyncIterator[LocalServer | None]:
    """Start `sluice serve` (step `start`), yield it (None if it did not start), and stop it
    (step `stop`) whatever happens meanwhile."""
    root = Path(tempfile.mkdtemp(prefix="sluice-smoke-"))
    data_dir, log_path = root / "data", root / "serve.log"
    port, admin_key = free_port(), secrets.token_urlsafe(24)
    url = f"http://127.0.0.1:{port}"
    process: asyncio.subprocess.Process | None = None
    try:
        with log_path.open("wb") as log:
            try:
                process = await _spawn(data_dir, port, admin_key, log)
            except OSError as exc:
                failure = Failure(f"cannot run {sluice_command()}: {exc}")
                await report.step("start", lambda: _raise(failure))
                yield None
                return
            started = await report.step("start", lambda: _ready(url, process))
            yield LocalServer(url, admin_key, process.pid) if started else None
    finally:
        if process is not None:
            stopped = await report.step("stop", lambda: _stop(process, data_dir / "pgdata"))
            if not stopped or not report.passed:
                _print_tail(report, log_path)
        shutil.rmtree(root, ignore_errors=True)


def sluice_command() -> Path:
    """The `sluice` of this interpreter's environment."""
    return Path(sys.executable).parent / "sluice"


def rss_bytes(pid: int) -> int | None:
    """The resident set size of process `pid` alone (not its children); None off Linux."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


DATABASE_SETTINGS = ("SLUICE_DATABASE_URL", "SLUICE_DIRECT_DATABASE_URL")


async def _spawn(
    data_dir: Path, port: int, admin_key: str, log: IO[bytes]
) -> asyncio.subprocess.Process:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SLUICE_") or key in DATABASE_SETTINGS
    }
    env.update(
        SLUICE_DATA_DIR=str(data_dir),
        SLUICE_HOST="127.0.0.1",
        SLUICE_PORT=str(port),
        SLUICE_ADMIN_API_KEY=admin_key,
    )
    return await asyncio.create_subprocess_exec(
        str(sluice_command()),
        "serve",
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        # Its own session: a Ctrl-C meant for the smoke test does not reach the server, which
        # the smoke test then stops with one SIGTERM (a second signal would stop it at once).
        start_new_session=True,
    )


async def _ready(url: str, process: asyncio.subprocess.Process) -> str:
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=2) as client:
        while True:
            if process.returncode is not None:
                raise Failure(f"sluice serve exited with {process.returncode} during start-up")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/ready")).status_code == 200:
                    return f"sluice serve (pid {process.pid}) ready on {url}"
            if time.monotonic() - started > START_SECONDS:
                raise Failure(f"{url}/ready did not answer 200 within {START_SECONDS:.0f} s")
            # Polling another process's start-up: there is nothing to wait on but time.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 0.2)


async def _stop(process: asyncio.subprocess.Process, pgdata: Path) -> str:
    problems = []
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
            problems.append(f"sluice serve ignored SIGTERM for {STOP_SECONDS:.0f} s (killed)")
    if process.returncode not in (0, -signal.SIGKILL):
        problems.append(f"sluice serve exited with {process.returncode}")
    if not await _postgres_stopped(pgdata):
        problems.append(
            f"the embedded PostgreSQL kept running {POSTGRES_STOP_SECONDS:.0f} s after "
            "sluice serve exited (stopped it)"
        )
    if problems:
        raise Failure("; ".join(problems))
    if not await asyncio.to_thread(os.path.exists, pgdata):
        return "SIGTERM: sluice serve exited with 0 (the database is an external one)"
    return "SIGTERM: sluice serve exited with 0 and its embedded PostgreSQL stopped"


async def _postgres_stopped(pgdata: Path) -> bool:
    """Whether the cluster in `pgdata` shut down by itself; if not, shut it down (fast)."""
    pid_file = pgdata / "postmaster.pid"
    deadline = time.monotonic() + POSTGRES_STOP_SECONDS
    while pid_file.exists():
        if time.monotonic() > deadline:
            _stop_postmaster(pid_file)
            return False
        await asyncio.sleep(0.2)  # PostgreSQL removes its pid file last thing on shutdown
    return True


def _stop_postmaster(pid_file: Path) -> None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown


def _print_tail(report: Report, log_path: Path) -> None:
    with contextlib.suppress(OSError):
        lines = log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        report.note(f"last {len(lines)} lines of sluice serve's output:")
        for line in lines:
            report.note(f"  | {line}")


async def _raise(error: Exception) -> str:
    raise error
