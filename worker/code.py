"""Running user code: a warm sandbox of the step's project, its requirements installed.

Shared by the `run_step` job kind and the flow engine's `code` steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from app import metrics
from app.settings import Settings
from worker.cache_requirements import RequirementsError, RequirementsInstaller
from worker.sandbox import Limits, SandboxPool, StepRequest, StepResult


def limits_from(settings: Settings) -> Limits:
    return Limits(
        wall_seconds=settings.step_timeout_seconds,
        cpu_seconds=settings.step_cpu_seconds,
        memory_bytes=settings.step_memory_mb * 1024 * 1024,
        output_bytes=settings.step_output_bytes,
        processes=settings.step_max_processes,
        open_files=settings.step_max_open_files,
    )


class CodeError(Exception):
    """Step code could not be started (its requirements failed to install)."""


@dataclasses.dataclass(frozen=True)
class CodeRunner:
    """Runs user code in a warm sandbox of its project, with its requirements installed."""

    sandboxes: SandboxPool
    installer: RequirementsInstaller
    limits: Limits

    async def run(
        self,
        project: str,
        code: str,
        input: Any,
        ctx: dict[str, Any],
        *,
        requirements: Sequence[str] = (),
        timeout_seconds: float | None = None,
        network: bool = False,
    ) -> StepResult:
        extra_paths: Sequence[str] = ()
        if requirements:
            try:
                extra_paths = [str(await self.installer.ensure(list(requirements)))]
            except RequirementsError as exc:
                raise CodeError(f"requirements could not be installed: {exc}") from None
        limits = self.limits
        if timeout_seconds is not None:
            limits = dataclasses.replace(limits, wall_seconds=timeout_seconds)
        result = await self.sandboxes.run(
            project, StepRequest(code, input, ctx, limits, extra_paths, network)
        )
        metrics.SANDBOX_OUTCOMES.labels(status=str(result.status)).inc()
        return result
