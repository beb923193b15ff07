"""One job → one outcome: find the job kind's handler, run it, classify what happened.

Invariant (bad input harms nothing): whatever a job holds — an unknown kind, a payload of the
wrong shape or type, a handler that raises — the executor returns an outcome with a clear
error; it never raises, except `CancelledError` when the worker stops or loses the lease.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from app import logs, run_log
from app.jobs import Job

log = logging.getLogger(__name__)

Handler = Callable[[Job], Awaitable[Any]]
"""Runs one job; returns its result. Raise `PermanentJobError` for a failure that a retry
cannot fix; any other exception is retried with backoff until attempts are spent."""


class PermanentJobError(Exception):
    """The job can never succeed (bad payload, user error): bury it without retrying."""


class RetryableJobError(Exception):
    """The job failed but may succeed later; `delay_seconds` overrides the backoff."""

    def __init__(self, message: str, *, delay_seconds: float | None = None) -> None:
        super().__init__(message)
        self.delay_seconds = delay_seconds


class Settled:
    """A handler's result meaning: the job was deleted by the handler itself, in the
    transaction that recorded its outcome (the flow engine does this); nothing to write."""


SETTLED = Settled()


class Verdict(enum.StrEnum):
    SETTLED = "settled"
    COMPLETE = "complete"
    RETRY = "retry"
    FAIL = "fail"


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    result: Any = None
    error: str | None = None
    delay_seconds: float | None = None


MAX_ERROR_CHARS = 8_000


class Executor:
    def __init__(self, handlers: Mapping[str, Handler]) -> None:
        self._handlers = dict(handlers)

    @property
    def kinds(self) -> list[str]:
        return sorted(self._handlers)

    async def execute(self, job: Job) -> Outcome:
        with logs.bound(**run_log.job_ids(job)):  # the job's ids on every line it logs
            return await self._execute(job)

    async def _execute(self, job: Job) -> Outcome:
        handler = self._handlers.get(job.kind)
        if handler is None:
            known = ", ".join(self.kinds) or "none"
            return _fail(f"unknown job kind {job.kind!r} (this worker handles: {known})")
        try:
            result = await handler(job)
        except asyncio.CancelledError:
            raise
        except pydantic.ValidationError as exc:
            return _fail(f"invalid payload for job kind {job.kind!r}: {_one_line(exc)}")
        except PermanentJobError as exc:
            return _fail(str(exc) or type(exc).__name__)
        except RetryableJobError as exc:
            return Outcome(Verdict.RETRY, error=_clip(str(exc)), delay_seconds=exc.delay_seconds)
        except Exception as exc:
            log.warning("job %s (%s) attempt %s raised %r", job.id, job.kind, job.attempt, exc)
            return Outcome(Verdict.RETRY, error=_clip("".join(traceback.format_exception(exc))))
        if isinstance(result, Settled):
            return Outcome(Verdict.SETTLED)
        return Outcome(Verdict.COMPLETE, result=result)


def _fail(error: str) -> Outcome:
    return Outcome(Verdict.FAIL, error=_clip(error))


def _one_line(exc: pydantic.ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "payload"
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
