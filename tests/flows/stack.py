"""A whole Sluice in the test's event loop: the HTTP app (uvicorn on an ephemeral port)
and a worker, on the test's database, plus a client holding a project's API key."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from pydantic import SecretStr

from app.flows.model import RunStatus
from app.projects import create_api_key, create_project
from app.settings import Settings
from app.signals import Watchers
from app.web import create_app
from ops.ports import free_port
from tests.integration.helpers import connect, eventually
from worker.runner import Worker

ADMIN = "admin-key-for-flow-tests"
SECRETS_KEY = "hN0FZbLmC3Fq2v0l0cYv9m3yq8B4d7Gd2m2rX4x3r0M="
"""A Fernet key of the tests (an external database needs SLUICE_SECRETS_KEY)."""
FINAL = frozenset(status.value for status in RunStatus if status.final)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


@dataclass
class Stack:
    settings: Settings
    base_url: str
    api_key: str
    project_id: int
    client: httpx.AsyncClient
    """Talks to the app, authenticated as the project."""
    worker: Worker | None

    async def deploy(self, flow: dict[str, Any]) -> dict[str, Any]:
        response = await self.client.put(f"/api/v1/flows/{flow['name']}", json=flow)
        assert response.status_code in (200, 201), response.text
        deployed: dict[str, Any] = response.json()
        return deployed

    async def trigger(
        self, flow_id: str, body: Any = None, *, sync: bool = False
    ) -> httpx.Response:
        path = f"/webhooks/{flow_id}" + ("/sync" if sync else "")
        return await self.client.post(path, json=body if body is not None else {})

    async def run(self, run_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/runs/{run_id}")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    async def wait_for_status(
        self, run_id: str, statuses: frozenset[str] | set[str] = FINAL, *, within: float = 30.0
    ) -> dict[str, Any]:
        """The run once its status is one of `statuses` (the run lives in the database)."""
        latest: dict[str, Any] = {}

        async def reached() -> bool:
            nonlocal latest
            latest = await self.run(run_id)
            return latest["status"] in statuses

        await eventually(reached, within=within)
        return latest

    async def wait_for_steps(
        self, run_id: str, keys: list[str], *, within: float = 30.0
    ) -> dict[str, Any]:
        """The run once it is final with steps `keys` recorded: a step the run's end stopped
        elsewhere (a cancel, the maintenance pass's timeout) is recorded by its worker just
        after."""
        latest: dict[str, Any] = {}

        async def recorded() -> bool:
            nonlocal latest
            latest = await self.run(run_id)
            return latest["status"] in FINAL and [s["key"] for s in latest["steps"]] == keys

        await eventually(recorded, within=within)
        return latest


@contextlib.asynccontextmanager
async def running_stack(
    database_url: str,
    *,
    with_worker: bool = True,
    project: str = "tests",
    in_process_replies: bool = False,
    **overrides: Any,
) -> AsyncIterator[Stack]:
    port = free_port()
    values: dict[str, Any] = {
        "database_url": SecretStr(database_url),
        "admin_api_key": SecretStr(ADMIN),
        "host": "127.0.0.1",
        "port": port,
        "pool_min_size": 1,
        "pool_max_size": 8,
        "worker_concurrency": 4,
        "poll_interval_seconds": 0.5,
        "maintenance_interval_seconds": 0.5,
        "http_allow_private": True,
        "secrets_key": SecretStr(SECRETS_KEY),
        **overrides,
    }
    settings = Settings(**values)
    conn = await connect(database_url)
    async with conn:
        record = await create_project(conn, project)
        _key, api_key = await create_api_key(conn, record.id, "tests")
    # Like `sluice serve` with WORKER_AND_APP: the worker hands replies to the app directly,
    # and the app wakes the worker directly for a new job.
    watchers = Watchers() if in_process_replies else None
    worker = Worker(settings, run_watchers=watchers) if with_worker else None
    wake = worker.wake_locally if in_process_replies and worker is not None else None
    server = _Server(
        uvicorn.Config(
            create_app(settings, run_watchers=watchers, wake_local_worker=wake),
            host="127.0.0.1",
            port=port,
            log_config=None,
            lifespan="on",
            access_log=False,
        )
    )
    stop = asyncio.Event()
    tasks = [asyncio.create_task(server.serve(), name="app")]
    if worker is not None:
        tasks.append(asyncio.create_task(worker.run(stop), name="worker"))
    base_url = f"http://127.0.0.1:{port}"
    try:
        await eventually(lambda: _started(server), within=20)
        if worker is not None:
            await asyncio.wait_for(worker.started.wait(), 20)
        async with httpx.AsyncClient(
            base_url=base_url,
            headers={"authorization": f"Bearer {api_key}"},
            timeout=60,
        ) as client:
            yield Stack(settings, base_url, api_key, record.id, client, worker)
    finally:
        stop.set()
        server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)


async def _started(server: uvicorn.Server) -> bool:
    return server.started
