"""Runs over HTTP: list, show, cancel, retry — all within the caller's project (another
project's runs answer 404)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse

from app import run_log
from app.flows import control, replays, run_views, waits
from app.flows.control import RunBudget
from app.flows.model import RunStatus
from app.web import auth
from app.web.errors import ApiError
from app.web.run_ref import path_run
from app.web.schemas import PendingWait, Problem, RunDetail, RunList, reply

_STATUSES = ", ".join(status.value for status in RunStatus)


def _query_limit(request: Request) -> int:
    raw = request.query_params.get("limit", str(run_views.DEFAULT_PAGE))
    if not raw.isdigit() or not 1 <= int(raw) <= run_views.MAX_PAGE:
        raise ApiError(
            422,
            "invalid query",
            problems=[{"path": "limit", "message": f"must be 1 to {run_views.MAX_PAGE}"}],
        )
    return int(raw)


def _query_status(request: Request) -> str | None:
    raw = request.query_params.get("status")
    if raw is None:
        return None
    if raw.upper() not in RunStatus.__members__:
        raise ApiError(
            422, "invalid query", problems=[{"path": "status", "message": f"one of {_STATUSES}"}]
        )
    return raw.upper()


async def list_runs(request: Request) -> JSONResponse:
    """A page of the project's runs, newest first."""
    project_id = await auth.project_id(request)
    limit = _query_limit(request)
    status = _query_status(request)
    flow = request.query_params.get("flow")
    if flow is not None and "\x00" in flow:
        problems = [Problem(path="flow", message="a flow name holds no NUL character")]
        raise ApiError(422, "invalid query", problems=problems)
    try:
        async with request.state.pool.connection() as conn:
            found, following = await run_views.list_runs(
                conn,
                project_id,
                flow=flow,
                status=status,
                limit=limit,
                cursor=request.query_params.get("cursor"),
            )
    except run_views.BadCursor as exc:
        problems = [Problem(path="cursor", message=str(exc))]
        raise ApiError(422, "invalid query", problems=problems) from None
    return reply(RunList(runs=found, next_cursor=following))


async def summary_of(request: Request, project_id: int, run_id: UUID) -> run_views.RunSummary:
    async with request.state.pool.connection() as conn:
        summary = await run_views.get_summary(conn, project_id, run_id)
    if summary is None:
        raise ApiError(404, f"no run {run_id}")
    return summary


async def show_run(request: Request) -> JSONResponse:
    """A run with its trigger, output, reply, steps, child runs and what it waits for."""
    project_id = await auth.project_id(request)
    run_id = await path_run(request, project_id)
    public_url = request.state.settings.resolved_public_url
    async with request.state.pool.connection() as conn:
        run = await run_views.get_run(conn, project_id, run_id)
        pending = await waits.pending(conn, run_id, public_url) if run is not None else []
    if run is None:
        raise ApiError(404, f"no run {run_id}")
    return reply(RunDetail(**dict(run), waits=[PendingWait.model_validate(w) for w in pending]))


async def cancel(state: Any, project_id: int, run_id: UUID, *, via: str = "api") -> bool:
    """Cancel a run of the project that has not ended, and its child runs (False: it had
    ended, or it is not the project's). The API and the console both call this."""
    async with state.pool.connection() as conn:
        async with conn.transaction():
            canceled = await control.cancel(conn, project_id, run_id)
        stopped = await run_views.run_tree(conn, run_id) if canceled else []
    for each in stopped:
        state.cancel_events.publish(str(each))
        state.run_events.publish(str(each))
    if canceled:
        run_log.transition(run_log.Transition.CANCELED, run_id, project=project_id, via=via)
    return canceled


async def retry(state: Any, project_id: int, run_id: UUID, *, via: str = "retry") -> bool:
    """Queue a run of the project that ended unsuccessfully again (False: it did not)."""
    async with state.pool.connection() as conn, conn.transaction():
        done = await replays.retry(conn, project_id, run_id, RunBudget.of(state.settings))
    retried = done.retried
    if retried:
        state.queue.wake()
        run_log.transition(run_log.Transition.ACCEPTED, run_id, project=project_id, via=via)
    return retried


async def cancel_run(request: Request) -> JSONResponse:
    """Cancel a run that has not ended, and its child runs."""
    project_id = await auth.project_id(request)
    run_id = await path_run(request, project_id)
    if not await cancel(request.state, project_id, run_id):
        ended = await summary_of(request, project_id, run_id)
        raise ApiError(409, f"run {run_id} has already ended ({ended.status})")
    return reply(await summary_of(request, project_id, run_id))
