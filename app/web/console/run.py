"""A run's page: status, timings, trigger, reply, its steps on a waterfall, what it waits
for; cancel and retry (the API's own core calls)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response

from app.flows import FlowDefinitionError, console_views, parse_flow, run_views
from app.settings import Settings
from app.web import runs
from app.web.console import pages, session
from app.web.console.pages import page

NOTES = {
    "canceled": "The run was canceled.",
    "not-canceled": "The run had ended already: nothing to cancel.",
    "retried": "The run is queued again.",
    "not-retried": "Only a run that ended unsuccessfully can be retried.",
    "approved": "The step is resumed.",
    "not-resumed": "The step was resumed already, or the run has ended.",
}


@dataclass(frozen=True)
class Bar:
    """A step on the waterfall: its row and its bar's place, in percent of the run."""

    step: run_views.StepRun
    depth: int
    left: float
    width: float
    child: UUID | None


def parse_run_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise pages.NotFound(f"No run {raw}.") from None


def _depths(definition: Any) -> dict[str, int]:
    """Each step id's nesting depth in the flow (branches, loops)."""
    try:
        parsed = parse_flow(definition)
    except FlowDefinitionError:
        return {}
    return {step.id: path.count(".") for path, step in parsed.iter_steps()}


def waterfall(
    run: run_views.Run, depths: dict[str, int], children: dict[str, UUID], now: datetime
) -> list[Bar]:
    starts = [s.started_at for s in run.steps if s.started_at] + [run.started_at or run.created_at]
    ends = [s.finished_at for s in run.steps if s.finished_at]
    origin = min(starts)
    end = run.finished_at or (now if not run.status.final else max(ends, default=origin))
    span = max((end - origin).total_seconds(), 1e-3)
    bars = []

    # Execution order: a loop or branch starts before the steps inside it, whose records
    # come first (they are written before their parent's).
    def depth(step: run_views.StepRun) -> int:
        return depths.get(step.step_id, step.key.count("."))

    ordered = sorted(
        run.steps, key=lambda s: (s.started_at is None, s.started_at or origin, depth(s))
    )
    for step in ordered:
        started = step.started_at or origin
        finished = step.finished_at or (now if not run.status.final else started)
        left = min(max((started - origin).total_seconds() / span * 100, 0.0), 100.0)
        width = max((finished - started).total_seconds() / span * 100, 0.4)
        bars.append(Bar(step, depth(step), left, min(width, 100.0 - left), children.get(step.key)))
    return bars


@page
async def run_page(request: Request) -> Response:
    viewer = await session.viewer(request)
    run_id = parse_run_id(request.path_params["run_id"])
    if viewer.project_id is None:
        raise pages.NotFound(f"No run {run_id}.")
    settings: Settings = request.state.settings
    async with request.state.pool.connection() as conn:
        run = await run_views.get_run(conn, viewer.project_id, run_id)
        if run is None:
            raise pages.NotFound(f"No run {run_id}.")
        definition = await console_views.flow_version(conn, run.flow_id, run.version)
        children = await console_views.child_links(conn, run_id)
        waiting = await console_views.waiting_steps(conn, viewer.project_id, run_id=run_id)
    now = datetime.now(UTC)
    return pages.render(
        request,
        "run.html",
        viewer,
        run=run,
        bars=waterfall(run, _depths(definition), children, now),
        waiting=waiting,
        public_url=settings.resolved_public_url,
        note=NOTES.get(request.query_params.get("note", "")),
    )


async def _action(request: Request, act: str) -> Response:
    viewer = await session.viewer(request)
    session.check_csrf(viewer.session, await request.form())
    run_id = parse_run_id(request.path_params["run_id"])
    if viewer.project_id is None:
        raise pages.NotFound(f"No run {run_id}.")
    async with request.state.pool.connection() as conn:
        if await run_views.get_summary(conn, viewer.project_id, run_id) is None:
            raise pages.NotFound(f"No run {run_id}.")
    if act == "cancel":
        done = await runs.cancel(request.state, viewer.project_id, run_id, via="console")
        note = "canceled" if done else "not-canceled"
    else:
        done = await runs.retry(request.state, viewer.project_id, run_id, via="console")
        note = "retried" if done else "not-retried"
    return pages.back_to(request, f"/console/runs/{run_id}?note={note}")


@page
async def cancel_run(request: Request) -> Response:
    return await _action(request, "cancel")


@page
async def retry_run(request: Request) -> Response:
    return await _action(request, "retry")
