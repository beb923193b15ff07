"""Helpers shared by the flow tests: flow-building shorthands, deploy refusals, signatures,
a local HTTP server whose replies a test scripts, and a look at the worker's sandboxes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.projects import create_api_key, create_project
from ops.ports import free_port
from tests.flows.stack import Stack
from tests.integration.helpers import connect, eventually


def code(step_id: str, source: str, **fields: Any) -> dict[str, Any]:
    """A code step; `source` is dedented, so it can be written indented in the test."""
    return {"id": step_id, "type": "code", "code": textwrap.dedent(source).strip(), **fields}


def step(run: dict[str, Any], key: str) -> dict[str, Any]:
    """The run's step instance with `key` (fails the test when it was not recorded)."""
    found: list[dict[str, Any]] = [s for s in run["steps"] if s["key"] == key]
    assert found, f"no step {key!r} in {[s['key'] for s in run['steps']]}"
    return found[0]


async def rejected(stack: Stack, flow: dict[str, Any]) -> list[dict[str, str]]:
    """The problems listed when deploying `flow` is refused (422)."""
    response = await stack.client.put(f"/api/v1/flows/{flow['name']}", json=flow)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid flow definition"
    problems: list[dict[str, str]] = body["problems"]
    return problems


def problem_at(problems: list[dict[str, str]], path: str) -> str:
    """The message of the problem at `path` (fails the test when there is none)."""
    messages = [p["message"] for p in problems if p["path"] == path]
    assert messages, f"no problem at {path!r}: {problems}"
    return messages[0]


def signature(secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


async def flow_id_of(stack: Stack, flow: dict[str, Any]) -> str:
    """Deploy `flow` and return its id."""
    deployed = await stack.deploy(flow)
    flow_id: str = deployed["id"]
    return flow_id


async def started_run(stack: Stack, flow_id: str, body: Any = None) -> str:
    """Trigger `flow_id` asynchronously; the new run's id."""
    accepted = await stack.trigger(flow_id, body)
    assert accepted.status_code == 202, accepted.text
    run_id: str = accepted.json()["run_id"]
    return run_id


async def metric_samples(stack: Stack) -> list[Sample]:
    """Every sample of ``GET /metrics``, parsed as the Prometheus text format."""
    response = await stack.client.get("/metrics")
    assert response.status_code == 200, response.text
    families = text_string_to_metric_families(response.text)
    return [sample for family in families for sample in family.samples]


async def jobs_claimed(stack: Stack) -> float:
    """How many jobs this process's workers have claimed so far."""
    samples = await metric_samples(stack)
    return sum(s.value for s in samples if s.name == "sluice_jobs_claimed_total")


# --- a local HTTP server ------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    """When it arrived (`time.monotonic()`)."""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class LocalServer:
    """An HTTP server on 127.0.0.1 that records requests and answers as scripted.

    `script(path, *replies)` queues replies (status, JSON body) for a path; each request
    takes the next one, and the last one repeats. An unscripted path answers 200 with
    ``{"path", "method", "echo"}`` (the request's JSON body, or its text). Requests to a
    path given to `hold` get no answer until `released` is set (at the latest, when the
    server stops).
    """

    base_url: str = ""
    requests: list[Received] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    _scripts: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    _held: set[str] = field(default_factory=set)
    _before_reply: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base_url + path

    def script(self, path: str, *replies: tuple[int, Any]) -> None:
        self._scripts[path] = list(replies)

    def hold(self, path: str) -> None:
        self._held.add(path)

    def on(self, path: str, before_reply: Callable[[], Awaitable[None]]) -> None:
        """Run `before_reply` when a request to `path` arrives, before it is answered."""
        self._before_reply[path] = before_reply

    def hits(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        path = request.url.path
        self.requests.append(
            Received(request.method, path, dict(request.headers), raw, time.monotonic())
        )
        if path in self._before_reply:
            await self._before_reply[path]()
        if path in self._held:
            await self.released.wait()
        replies = self._scripts.get(path)
        if replies:
            status, body = replies.pop(0) if len(replies) > 1 else replies[0]
            return JSONResponse(body, status_code=status)
        try:
            echo: Any = json.loads(raw) if raw else None
        except ValueError:
            echo = raw.decode()
        return JSONResponse({"path": path, "method": request.method, "echo": echo})


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


@contextlib.asynccontextmanager
async def local_server() -> AsyncIterator[LocalServer]:
    port = free_port()
    server = LocalServer(base_url=f"http://127.0.0.1:{port}")
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app = Starlette(routes=[Route("/{path:path}", server._handle, methods=methods)])
    uvicorn_server = _QuietServer(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, lifespan="off", access_log=False
        )
    )
    task = asyncio.create_task(uvicorn_server.serve(), name="local-http-server")

    async def started() -> bool:
        if task.done():
            task.result()
        return uvicorn_server.started

    try:
        await eventually(started, within=10)
        yield server
    finally:
        server.released.set()
        uvicorn_server.should_exit = True
        await task


# --- the worker's sandboxes ---------------------------------------------------------------


def busy_descendants(min_cpu_seconds: float = 0.0) -> set[int]:
    """This process's descendants that are running (state R) and have used at least
    `min_cpu_seconds` of CPU: a sandbox in a busy loop, not a warm one waiting on its pipe
    (state S) or one still starting up."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    busy: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ... utime stime ...": comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        if fields[0] == "R" and (int(fields[11]) + int(fields[12])) / ticks >= min_cpu_seconds:
            busy.add(pid)
    me = os.getpid()

    def descends(pid: int) -> bool:
        seen = set()
        while pid in parents and pid not in seen:
            seen.add(pid)
            pid = parents[pid]
            if pid == me:
                return True
        return False

    return {pid for pid in busy if descends(pid)}


async def second_project_client(stack: Stack, database_url: str) -> httpx.AsyncClient:
    """A client of the same app holding another project's API key (close it after use)."""
    conn = await connect(database_url)
    async with conn:
        record = await create_project(conn, "elsewhere")
        _key, api_key = await create_api_key(conn, record.id, "elsewhere")
    return httpx.AsyncClient(
        base_url=stack.base_url, headers={"authorization": f"Bearer {api_key}"}, timeout=30
    )
