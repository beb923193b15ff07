"""The spans of a run's execution (tracing on; each is a no-op off): the execution, a
child of the trace context the run was made in (its row's `traceparent`), with its claim
and one span per step attempt; a code or http step's span is open while it runs, so that
the outbound request (a client span, whose context the request carries) is its child.

Steps the engine does not perform itself (respond, branch, delay, ...) get their span from
their record, with its start and end times.
"""

from __future__ import annotations

import contextlib
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime

from app import tracing
from app.flows.model import LoadedRun, StepRecord, StepStatus
from app.jobs import Job
from worker.flow.effects import Broken, Done, Failed, RunCode, SendHttp

PERFORMED = frozenset({"code", "http"})
"""Step types whose spans are opened around their work (`step`), not made from records."""


@contextlib.contextmanager
def execution(run: LoadedRun, job: Job, began_ns: int) -> Iterator[None]:
    """The span of one execution of `run` (`job`, claimed at `began_ns`), current inside."""
    if not tracing.active():
        yield
        return
    attributes: tracing.Attributes = {
        "sluice.run_id": str(run.id),
        "sluice.project_id": run.project_id,
        "sluice.flow": run.flow_name,
        "sluice.job_id": job.id,
        "sluice.attempt": job.attempt,
    }
    name = f"run {run.flow_name}"
    with tracing.span(name, attributes, kind="consumer", parent=run.traceparent, start_ns=began_ns):
        tracing.record("claim", began_ns, time.time_ns(), {"sluice.job_id": job.id})
        yield


def observing(observe: Callable[[StepRecord], None]) -> Callable[[StepRecord], None]:
    """`observe` (the step metrics), and a span for each record of a step not performed."""
    if not tracing.active():
        return observe

    def both(record: StepRecord) -> None:
        observe(record)
        if record.type not in PERFORMED and record.started_at and record.finished_at:
            error = record.error if record.status is not StepStatus.SUCCEEDED else None
            tracing.record(
                f"step {record.key}",
                _ns(record.started_at),
                _ns(record.finished_at),
                {
                    "sluice.step.key": record.key,
                    "sluice.step.type": record.type,
                    "sluice.step.status": str(record.status),
                },
                error,
            )

    return both


@contextlib.contextmanager
def step(effect: RunCode | SendHttp) -> Iterator[Callable[[object], None]]:
    """The span of a code or http step's attempt, current inside; call what it yields with
    the attempt's answer."""
    kind = "code" if isinstance(effect, RunCode) else "http"
    attributes = {"sluice.step.key": effect.key, "sluice.step.type": kind}
    with tracing.span(f"step {effect.key}", attributes) as span:

        def answered(answer: object) -> None:
            if isinstance(answer, Done):
                span.set("sluice.step.status", str(StepStatus.SUCCEEDED))
            elif isinstance(answer, Failed):
                span.set("sluice.step.status", str(answer.status))
                span.fail(answer.error)
            elif isinstance(answer, Broken):
                span.fail(answer.error)

        yield answered


@contextlib.contextmanager
def outbound(method: str, url: str) -> Iterator[tuple[Mapping[str, str], Callable[[int], None]]]:
    """The client span of an http step's request: the headers to add (its `traceparent`),
    and what to call with the response's status. The URL is recorded without its query and
    credentials."""
    if not tracing.active():
        yield {}, lambda _status: None
        return
    parts = urllib.parse.urlsplit(url)
    attributes = {
        "http.request.method": method.upper(),
        "url.scheme": parts.scheme,
        "server.address": parts.hostname or "",
        "url.path": parts.path or "/",
    }
    with tracing.span(f"{method.upper()} {parts.hostname}", attributes, kind="client") as span:

        def status(code: int) -> None:
            span.set("http.response.status_code", code)
            if code >= 400:
                span.fail(f"answered {code}")

        headers = {tracing.TRACEPARENT: span.traceparent} if span.traceparent else {}
        yield headers, status


def _ns(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000_000)
