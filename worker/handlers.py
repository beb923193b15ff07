"""The job kinds every worker handles, and the resources they share for its lifetime.

`run_step` runs one piece of user code in the sandbox: the payload names the code, its input
and context, optional pip requirements and a wall-time limit. A step that fails on its own
terms (an exception, a limit hit) fails the job for good with the step's status in the error;
a sandbox that broke for other reasons (INTERNAL_ERROR) is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator
from ipaddress import ip_address
from typing import Any

import pydantic
from psycopg import conninfo

from app import db, sampling
from app.flows.model import EXECUTE_RUN
from app.flows.replays import RETRY_RUNS
from app.jobs import Job
from app.settings import SandboxSetting, Settings
from worker.bulk_retry import BulkRetrier
from worker.cache_requirements import RequirementsInstaller
from worker.code import CodeError, CodeRunner, limits_from
from worker.executor import Handler, PermanentJobError, RetryableJobError
from worker.flow import FlowEngine
from worker.flow.performers import Performers
from worker.sandbox import SandboxPool, StepStatus, resolve_mode
from worker.services import WorkerServices
from worker.steps.guard import IPAddress
from worker.steps.http import HttpClient
from worker.templates import RenderBudget, TemplateRenderer

RUN_STEP = "run_step"


class RunStepPayload(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    code: str = pydantic.Field(min_length=1)
    input: Any = None
    ctx: dict[str, Any] = pydantic.Field(default_factory=dict)
    requirements: list[str] = pydantic.Field(default_factory=list)
    timeout_seconds: float | None = pydantic.Field(default=None, gt=0)


@dataclasses.dataclass(frozen=True)
class StepRunner:
    """The `run_step` job kind: one piece of code, outside any flow."""

    code: CodeRunner

    async def __call__(self, job: Job) -> dict[str, Any]:
        payload = RunStepPayload.model_validate(job.payload)
        try:
            result = await self.code.run(
                str(job.project_id or "default"),
                payload.code,
                payload.input,
                payload.ctx,
                requirements=payload.requirements,
                timeout_seconds=payload.timeout_seconds,
            )
        except CodeError as exc:
            raise PermanentJobError(str(exc)) from None
        if result.status is StepStatus.INTERNAL_ERROR:
            raise RetryableJobError(f"{result.status}: {result.error}")
        if result.status is not StepStatus.SUCCEEDED:
            detail = result.traceback or result.error or ""
            raise PermanentJobError(f"{result.status}: {detail}".strip())
        return {
            "output": result.output,
            "stdout": result.stdout,
            "stderr": result.stderr,
            "duration_seconds": result.duration_seconds,
        }


@contextlib.asynccontextmanager
async def default_handlers(
    settings: Settings, services: WorkerServices | None = None
) -> AsyncIterator[dict[str, Handler]]:
    """The built-in handlers, with a sandbox pool, installer and HTTP client open while they
    are in use; `execute_run` (flows) when the worker's services are given."""
    requested = None if settings.sandbox is SandboxSetting.AUTO else str(settings.sandbox)
    mode = resolve_mode(requested)
    installer = RequirementsInstaller(settings.resolved_cache_dir / "requirements")
    urls = {db.database_url(settings), db.direct_url(settings)} if settings.database_url else ()
    denied = [endpoint for url in urls for endpoint in await database_endpoints(url)]
    async with (
        SandboxPool(
            mode,
            max_uses=settings.sandbox_max_uses,
            allow_private=settings.http_allow_private,
            denied=denied,
        ) as sandboxes,
        HttpClient(allow_private=settings.http_allow_private) as http,
        TemplateRenderer(RenderBudget.of(settings)) as templates,
    ):
        code = CodeRunner(sandboxes, installer, limits_from(settings))
        handlers: dict[str, Handler] = {RUN_STEP: StepRunner(code)}
        if services is not None:
            performers = Performers(code, http, templates)
            handlers[EXECUTE_RUN] = FlowEngine(settings, services, performers)
            handlers[RETRY_RUNS] = BulkRetrier(settings, services)
        with sampling.watch_sandboxes(sandboxes.census):
            yield handlers


async def database_endpoints(url: str) -> list[tuple[IPAddress, int]]:
    """The TCP addresses and ports the database URL `url` names (none for a Unix socket), which
    steps with network may never reach, whatever the address guard allows."""
    params = conninfo.conninfo_to_dict(url)
    hosts = str(params.get("hostaddr") or params.get("host") or "").split(",")
    ports = str(params.get("port") or "5432").split(",")
    loop = asyncio.get_running_loop()
    found: list[tuple[IPAddress, int]] = []
    for index, host in enumerate(hosts):
        port = int((ports[index] if len(ports) == len(hosts) else ports[0]) or 5432)
        if not host or host.startswith(("/", "@")):
            continue
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            continue  # not resolvable here, so not reachable through the proxy either
        found += [(ip_address(str(info[4][0]).split("%")[0]), port) for info in infos]
    return found
