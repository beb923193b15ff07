"""Retry and replay over HTTP: a retry on the pinned or live version and from a step, a
replay of a finished run as a new one, and a bulk retry that the queue carries out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import pydantic
from starlette.requests import Request
from starlette.responses import JSONResponse

from app import run_log
from app.flows import replays
from app.flows.control import RunBudget
from app.flows.model import RunStatus
from app.flows.replays import BulkRetry, UnknownStep, Version
from app.jobs import NewJob
from app.views import View
from app.web import auth
from app.web.body import parse
from app.web.errors import ApiError
from app.web.run_ref import path_run
from app.web.runs import summary_of
from app.web.schemas import Problem, reply

RETRYABLE = ("FAILED", "TIMEOUT", "CANCELED", "MEMORY_LIMIT_EXCEEDED", "LOG_SIZE_EXCEEDED",
             "INTERNAL_ERROR")  # fmt: skip


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")


class RetryRequest(_Strict):
    """How to retry: on the `pinned` version (the run's own) or the `latest` (live) one, and
    from which step (its records and those after it are forgotten; None: the failed step)."""

    version: Version = Version.PINNED
    from_step: str | None = pydantic.Field(default=None, min_length=1, max_length=200)


class ReplayRequest(_Strict):
    """What to replay with: `data` replaces the trigger's body (absent: the same trigger)."""

    data: Any = None
    version: Version = Version.PINNED


MAX_AGO_SECONDS = 100 * 365 * 86400.0
Ago = Annotated[float, pydantic.Field(ge=0, le=MAX_AGO_SECONDS, allow_inf_nan=False)]
"""Seconds before now (a century at most)."""


class BulkRetryRequest(_Strict):
    """Which runs to retry: of `flow` (any), in `status`, created in [since, until) — each an
    ISO time or a number of seconds ago; `dry_run` only counts them."""

    flow: str | None = pydantic.Field(default=None, min_length=1, max_length=200)
    status: Literal[RETRYABLE] = "FAILED"  # type: ignore[valid-type]
    since: datetime | Ago | None = None
    until: datetime | Ago | None = None
    dry_run: bool = False
    version: Version = Version.PINNED

    @pydantic.field_validator("status", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class BulkRetryAccepted(View):
    """A bulk retry: how many runs it matched when asked, and (unless a dry run) its id."""

    count: int
    batch_id: uuid.UUID | None
    dry_run: bool


async def retry_run(request: Request) -> JSONResponse:
    """Queue a run that ended unsuccessfully again, on its pinned or the live version, from
    its failed step or `from_step`; an empty body is a pinned retry from the failed step."""
    project_id = await auth.project_id(request)
    run_id = await path_run(request, project_id)
    asked: RetryRequest = await parse(request, RetryRequest, optional=True)
    budget = RunBudget.of(request.state.settings)
    try:
        async with request.state.pool.connection() as conn, conn.transaction():
            done = await replays.retry(
                conn, project_id, run_id, budget, version=asked.version, from_step=asked.from_step
            )
    except UnknownStep as exc:
        problems = [Problem(path="from_step", message=f"no step {exc} in the flow")]
        raise ApiError(422, f"no step {exc} in the flow", problems=problems) from None
    if done.status is None and not done.retried:
        raise ApiError(404, f"no run {run_id}")
    if not done.retried:
        raise ApiError(409, f"run {run_id} is {done.status}; only a run that failed can be retried")
    request.state.queue.wake()
    run_log.transition(run_log.Transition.ACCEPTED, run_id, project=project_id, via="retry")
    return reply(await summary_of(request, project_id, run_id), 202)


async def replay_run(request: Request) -> JSONResponse:
    """Start a new run of a finished run's flow with its trigger, or with `data` as the body."""
    project_id = await auth.project_id(request)
    run_id = await path_run(request, project_id)
    asked: ReplayRequest = await parse(request, ReplayRequest, optional=True)
    extra: dict[str, Any] = {"body": asked.data} if "data" in asked.model_fields_set else {}
    budget = RunBudget.of(request.state.settings)
    async with request.state.pool.connection() as conn, conn.transaction():
        done = await replays.replay(
            conn, project_id, run_id, budget, version=asked.version, **extra
        )
    if done.at_cap:
        raise ApiError(
            429,
            f"the project has {budget.max_live_runs} live runs (SLUICE_MAX_LIVE_RUNS); "
            "retry once some have ended",
        )
    if done.run_id is None:
        if done.status is None:
            raise ApiError(404, f"no run {run_id}")
        raise ApiError(409, f"run {run_id} is {done.status}; only a finished run can be replayed")
    request.state.queue.wake()
    run_log.transition(run_log.Transition.ACCEPTED, done.run_id, project=project_id, via="replay")
    response = reply(await summary_of(request, project_id, done.run_id), 202)
    response.headers["x-sluice-run-id"] = str(done.run_id)
    return response


def _instant(value: datetime | float | None, now: datetime) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    return now - timedelta(seconds=value)


async def bulk_retry(request: Request) -> JSONResponse:
    """Count the runs a filter matches and, unless a dry run, retry them through the queue."""
    project_id = await auth.project_id(request)
    asked: BulkRetryRequest = await parse(request, BulkRetryRequest, optional=True)
    now = datetime.now(UTC)
    until = _instant(asked.until, now)
    async with request.state.pool.connection() as conn, conn.transaction():
        flow_id = None
        if asked.flow is not None:
            flow_id = await replays.flow_named(conn, project_id, asked.flow)
            if flow_id is None:
                problems = [Problem(path="flow", message=f"no flow {asked.flow!r}")]
                raise ApiError(422, f"no flow {asked.flow!r} in this project", problems=problems)
        bulk = BulkRetry(
            batch=uuid.uuid4(),
            project_id=project_id,
            flow_id=flow_id,
            status=RunStatus(asked.status),
            since=_instant(asked.since, now),
            until=now if until is None else min(until, now),
            latest=asked.version is Version.LATEST,
        )
        count = await replays.count_matching(conn, bulk)
        if not asked.dry_run and count:
            job = NewJob(replays.RETRY_RUNS, bulk.payload(), project_id=project_id)
            await request.state.queue.enqueue(conn, job)
    batch = None if asked.dry_run or not count else bulk.batch
    if batch is not None:
        request.state.queue.wake()
    accepted = BulkRetryAccepted(count=count, batch_id=batch, dry_run=asked.dry_run)
    return JSONResponse(accepted.model_dump(mode="json"), 200 if asked.dry_run else 202)
