"""What flow tests run beside Sluice: a local HTTP endpoint that `http` steps call (counting
hits and overlap, holding requests at the test's word), real `sluice serve` processes, and
projects made directly in the database."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import uvicorn
from psycopg import AsyncConnection
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.flows import store
from app.flows.definition import parse_flow
from app.projects import create_api_key, create_project
from ops.ports import free_port
from tests.e2e.processes import sluice_env, started
from tests.integration.helpers import eventually, fetchval

ADMIN = "admin-key-for-flow-process-tests"
SERVE = [sys.executable, "-m", "app.cli", "serve"]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Probe:
    """`POST /hit/{name}`: counts requests per name, tracks how many are in progress at once
    (`peak`), and holds them while the name's gate is closed or for `hold_seconds`."""

    def __init__(self, *, hold_seconds: float = 0.0) -> None:
        self.base_url = ""
        self.hold_seconds = hold_seconds
        self.hits: Counter[str] = Counter()
        self.active: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.bodies: defaultdict[str, list[bytes]] = defaultdict(list)
        self._gates: dict[str, asyncio.Event] = {}
        self._changed = asyncio.Condition()

    def url(self, name: str) -> str:
        return f"{self.base_url}/hit/{name}"

    def close_gate(self, name: str) -> asyncio.Event:
        """Hold requests to `name` until the returned event is set."""
        gate = self._gates[name] = asyncio.Event()
        return gate

    async def wait_for_hits(self, name: str, count: int, *, within: float = 30.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.hits[name] >= count), within)

    async def wait_for_active(self, name: str, count: int, *, within: float = 30.0) -> None:
        """Return once `count` requests to `name` are in progress at the same time."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: self.active[name] >= count), within
            )

    def open_all(self) -> None:
        for gate in self._gates.values():
            gate.set()

    async def _hit(self, request: Request) -> JSONResponse:
        name = request.path_params["name"]
        self.bodies[name].append(await request.body())
        self.hits[name] += 1
        self.active[name] += 1
        self.peak[name] = max(self.peak[name], self.active[name])
        async with self._changed:
            self._changed.notify_all()
        try:
            gate = self._gates.get(name)
            if gate is not None:
                await gate.wait()
            if self.hold_seconds:
                await asyncio.sleep(self.hold_seconds)  # the work the step waits for
        finally:
            self.active[name] -= 1
        return JSONResponse({"name": name, "hit": self.hits[name]})


@contextlib.asynccontextmanager
async def probe_server(*, hold_seconds: float = 0.0) -> AsyncIterator[Probe]:
    probe = Probe(hold_seconds=hold_seconds)
    port = free_port()
    app = Starlette(routes=[Route("/hit/{name}", probe._hit, methods=["POST", "GET"])])
    server = _Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
    )
    task = asyncio.create_task(server.serve(), name="probe")
    probe.base_url = f"http://127.0.0.1:{port}"

    async def serving() -> bool:
        if task.done():
            task.result()
        return server.started

    try:
        await eventually(serving, within=20)
        yield probe
    finally:
        probe.open_all()
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)


# --- the database -------------------------------------------------------------------------


async def new_project(
    conn: AsyncConnection[Any], name: str, concurrency_limit: int | None = None
) -> tuple[int, str]:
    """A project and an API key for it."""
    project = await create_project(conn, name, concurrency_limit)
    _record, key = await create_api_key(conn, project.id, "tests")
    return project.id, key


async def deploy(conn: AsyncConnection[Any], project_id: int, document: dict[str, Any]) -> UUID:
    return (await store.deploy(conn, project_id, parse_flow(document))).flow_id


async def run_status(conn: AsyncConnection[Any], run_id: UUID | str) -> str | None:
    status: str | None = await fetchval(
        conn, "SELECT status FROM flow_runs WHERE id = %s", (str(run_id),)
    )
    return status


async def until_status(
    conn: AsyncConnection[Any], run_id: UUID | str, *statuses: str, within: float = 30.0
) -> str:
    """The run's status once it is one of `statuses` (the run lives in the database)."""

    async def reached() -> bool:
        return await run_status(conn, run_id) in statuses

    await eventually(reached, within=within)
    return str(await run_status(conn, run_id))


# --- real processes -------------------------------------------------------------------------


def serve_env(database_url: str, role: str, data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of a `sluice serve --role <role>` process on the test's database."""
    defaults = {
        "SLUICE_DATABASE_URL": database_url,
        "SLUICE_CONTAINER_TYPE": role.upper(),
        "SLUICE_DATA_DIR": str(data_dir),
        "SLUICE_MIGRATE_ON_START": "false",
        "SLUICE_ADMIN_API_KEY": ADMIN,
        "SLUICE_POLL_INTERVAL_SECONDS": "0.5",
        "SLUICE_HEARTBEAT_INTERVAL_SECONDS": "0.5",
        "SLUICE_LEASE_TTL_SECONDS": "2",
        "SLUICE_MAINTENANCE_INTERVAL_SECONDS": "0.5",
        "SLUICE_WORKER_CONCURRENCY": "4",
        "SLUICE_HTTP_ALLOW_PRIVATE": "true",
        "SLUICE_POOL_MIN_SIZE": "1",
        "SLUICE_POOL_MAX_SIZE": "4",
        "SLUICE_SYNC_TIMEOUT_SECONDS": "30",
    }
    return sluice_env(**{**defaults, **settings})


def serving(env: dict[str, str]) -> AbstractContextManager[subprocess.Popen[str]]:
    """A `sluice serve` process, killed and reaped at the end."""
    return started(SERVE, env)


def _alive(process: subprocess.Popen[str]) -> None:
    if process.poll() is not None:
        out, _ = process.communicate(timeout=30)
        raise AssertionError(f"sluice exited early ({process.returncode}):\n{out}")


async def app_ready(process: subprocess.Popen[str], base_url: str) -> None:
    """Return once the app process answers /ready with 200."""
    async with httpx.AsyncClient(base_url=base_url, timeout=1) as client:

        async def ready() -> bool:
            _alive(process)
            try:
                return (await client.get("/ready")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(ready, within=60)


async def worker_ready(process: subprocess.Popen[str], observer: AsyncConnection[Any]) -> None:
    """Return once the worker process has registered (it claims right after)."""

    async def registered() -> bool:
        _alive(process)
        return bool(
            await fetchval(
                observer,
                "SELECT count(*) = 1 FROM workers WHERE pid = %s AND stopped_at IS NULL",
                (process.pid,),
            )
        )

    await eventually(registered, within=60)
