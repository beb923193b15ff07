"""Performers: code and http steps, done for real, under the run's cancel event, and
templates rendered by the render processes.

Each takes the effect the replay asked for (its time limit already bounded by the run's
deadline) and answers with a value. A cancel notification for the run stops the work at
once (the sandbox is killed, the request dropped) and answers `INTERRUPTED`: the caller
then reads the run to tell a real cancel from a stale notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Mapping
from typing import TypeVar

from app.flows.model import StepStatus
from app.flows.templating import TemplateError
from worker.code import CodeError, CodeRunner
from worker.flow import rendering, traces
from worker.flow.effects import Broken, Done, Failed, Render, RunCode, SendHttp
from worker.sandbox import StepStatus as SandboxStatus
from worker.steps.http import HttpClient, HttpRequestSpec, HttpStepError
from worker.templates import TemplateRenderer

T = TypeVar("T")

MAX_STDIO_CHARS = 64 * 1024

_SANDBOX_TO_STEP = {
    SandboxStatus.FAILED: StepStatus.FAILED,
    SandboxStatus.TIMEOUT: StepStatus.TIMEOUT,
    SandboxStatus.MEMORY_LIMIT_EXCEEDED: StepStatus.MEMORY_LIMIT_EXCEEDED,
    SandboxStatus.LOG_SIZE_EXCEEDED: StepStatus.LOG_SIZE_EXCEEDED,
}


class Interrupted:
    """The run's cancel notification came first; the work was stopped."""


INTERRUPTED = Interrupted()


@dataclasses.dataclass(frozen=True)
class Performers:
    code: CodeRunner
    http: HttpClient
    templates: TemplateRenderer

    async def render(self, effect: Render) -> Done | Failed:
        rendered = await self.templates.render(
            effect.source, effect.context, condition=effect.condition, max_chars=effect.max_chars
        )
        if rendered.error is None:
            return Done(rendered.value)
        error = str(TemplateError(effect.source, rendered.error))
        return rendering.failed(effect.field, error, limit=rendered.limit)

    async def run_code(
        self, project: str, effect: RunCode, canceled: asyncio.Event
    ) -> Done | Failed | Broken | Interrupted:
        work = self.code.run(
            project,
            effect.code,
            effect.input,
            effect.ctx,
            requirements=effect.requirements,
            timeout_seconds=effect.timeout_seconds,
            network=effect.network,
        )
        try:
            result = await _unless(canceled, work)
        except CodeError as exc:
            return Failed(StepStatus.FAILED, str(exc))
        if isinstance(result, Interrupted):
            return result
        stdout, stderr = _clip(result.stdout), _clip(result.stderr)
        if result.status is SandboxStatus.SUCCEEDED:
            return Done(result.output, stdout, stderr)
        if result.status is SandboxStatus.INTERNAL_ERROR:
            return Broken(result.error or "the sandbox died")
        error = (result.traceback or result.error or str(result.status)).strip()
        return Failed(_SANDBOX_TO_STEP[result.status], error, stdout=stdout, stderr=stderr)

    async def send_http(
        self, effect: SendHttp, canceled: asyncio.Event
    ) -> Done | Failed | Interrupted:
        with traces.outbound(effect.method, effect.url) as (traced, answered):
            spec = HttpRequestSpec(
                method=effect.method,
                url=effect.url,
                headers=_with_trace(effect.headers, traced),
                body=effect.body,
                timeout_seconds=effect.timeout_seconds,
            )
            try:
                response = await _unless(canceled, self.http.send(spec))
            except HttpStepError as exc:
                if exc.output is not None:
                    answered(int(exc.output["status"]))
                return Failed(StepStatus.FAILED, str(exc), output=exc.output)
            if isinstance(response, Interrupted):
                return response
            answered(int(response["status"]))
            return Done(response)


async def _unless(canceled: asyncio.Event, work: Awaitable[T]) -> T | Interrupted:
    """`work`'s result, unless `canceled` is set first: then the work is stopped."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(canceled.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        return INTERRUPTED
    return task.result()


def _with_trace(headers: dict[str, str], traced: Mapping[str, str]) -> dict[str, str]:
    """The step's headers and the trace's, unless the step sets a `traceparent` itself."""
    if not traced or any(name.lower() in traced for name in headers):
        return headers
    return {**headers, **traced}


def _clip(text: str) -> str:
    return text if len(text) <= MAX_STDIO_CHARS else text[: MAX_STDIO_CHARS - 1] + "…"
