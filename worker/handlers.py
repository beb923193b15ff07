"""The job kinds every worker handles, and the resources they share for its lifetime.

`run_step` runs one piece of user code in the sandbox: the payload names the code, its input
and context, optional pip requirements and a wall-time limit. A step that fails on its own
terms (an exception, a limit hit) fails the job for good with the step's status in the error;
a sandbox that broke for other reasons (INTERNAL_ERROR) is retried.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pydantic

from app.jobs import Job
from app.settings import SandboxSetting, Settings
from worker.cache_requirements import RequirementsError, RequirementsInstaller
from worker.executor import Handler, PermanentJobError, RetryableJobError
from worker.sandbox import Limits, SandboxPool, StepRequest, StepStatus, resolve_mode

RUN_STEP = "run_step"


class RunStepPayload(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    code: str = pydantic.Field(min_length=1)
    input: Any = None
    ctx: dict[str, Any] = pydantic.Field(default_factory=dict)
    requirements: list[str] = pydantic.Field(default_factory=list)
    timeout_seconds: float | None = pydantic.Field(default=None, gt=0)


def limits_from(settings: Settings) -> Limits:
    return Limits(
        wall_seconds=settings.step_timeout_seconds,
        cpu_seconds=settings.step_cpu_seconds,
        memory_bytes=settings.step_memory_mb * 1024 * 1024,
        output_bytes=settings.step_output_bytes,
        processes=settings.step_max_processes,
        open_files=settings.step_max_open_files,
    )


@dataclasses.dataclass(frozen=True)
class StepRunner:
    sandboxes: SandboxPool
    installer: RequirementsInstaller
    limits: Limits

    async def __call__(self, job: Job) -> dict[str, Any]:
        payload = RunStepPayload.model_validate(job.payload)
        extra_paths: Sequence[str] = ()
        if payload.requirements:
            try:
                extra_paths = [str(await self.installer.ensure(payload.requirements))]
            except RequirementsError as exc:
                raise PermanentJobError(f"requirements could not be installed: {exc}") from None
        limits = self.limits
        if payload.timeout_seconds is not None:
            limits = dataclasses.replace(limits, wall_seconds=payload.timeout_seconds)
        request = StepRequest(payload.code, payload.input, payload.ctx, limits, extra_paths)
        result = await self.sandboxes.run(str(job.project_id or "default"), request)
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
async def default_handlers(settings: Settings) -> AsyncIterator[dict[str, Handler]]:
    """The built-in handlers, with a sandbox pool and installer open while they are in use."""
    requested = None if settings.sandbox is SandboxSetting.AUTO else str(settings.sandbox)
    mode = resolve_mode(requested)
    installer = RequirementsInstaller(settings.resolved_cache_dir / "requirements")
    async with SandboxPool(mode, max_uses=settings.sandbox_max_uses) as sandboxes:
        yield {RUN_STEP: StepRunner(sandboxes, installer, limits_from(settings))}
