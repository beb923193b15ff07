"""The runs page: newest first, filtered by flow, status and time, paged by cursor; its
rows fragment is polled for live updates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from app.flows import run_views
from app.flows.model import RunStatus
from app.web.console import pages, session
from app.web.console.pages import page

PAGE = 50


@dataclass(frozen=True)
class Filters:
    flow: str | None
    status: str | None
    since: datetime | None
    until: datetime | None
    cursor: str | None
    problems: tuple[str, ...]

    def query(self, **changes: str | None) -> str:
        values = {
            "flow": self.flow,
            "status": self.status,
            "since": _field(self.since),
            "until": _field(self.until),
            **changes,
        }
        return urlencode({k: v for k, v in values.items() if v})


def _field(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M")


def _time(raw: str | None, name: str, problems: list[str]) -> datetime | None:
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        problems.append(f"{name}: not a date and time")
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def filters(request: Request) -> Filters:
    """The page's filters; a bad value is dropped with a problem to show."""
    params = request.query_params
    problems: list[str] = []
    flow = params.get("flow") or None
    if flow is not None and "\x00" in flow:
        problems.append("flow: a flow name holds no NUL character")
        flow = None
    status = (params.get("status") or "").upper() or None
    if status is not None and status not in RunStatus.__members__:
        problems.append(f"status: unknown status {status}")
        status = None
    return Filters(
        flow=flow,
        status=status,
        since=_time(params.get("since"), "from", problems),
        until=_time(params.get("until"), "until", problems),
        cursor=params.get("cursor") or None,
        problems=tuple(problems),
    )


async def _page(
    request: Request, viewer: session.Viewer, chosen: Filters
) -> tuple[list[run_views.RunSummary], str | None, list[str]]:
    problems = list(chosen.problems)
    if viewer.project_id is None:
        return [], None, problems
    try:
        async with request.state.pool.connection() as conn:
            found, following = await run_views.list_runs(
                conn,
                viewer.project_id,
                flow=chosen.flow,
                status=chosen.status,
                limit=PAGE,
                cursor=chosen.cursor,
                since=chosen.since,
                until=chosen.until,
            )
    except run_views.BadCursor:
        problems.append("this page's cursor is not one the console handed out")
        return [], None, problems
    return found, following, problems


@page
async def runs_page(request: Request) -> Response:
    viewer = await session.viewer(request)
    chosen = filters(request)
    found, following, problems = await _page(request, viewer, chosen)
    return pages.render(
        request,
        "runs.html",
        viewer,
        runs=found,
        filters=chosen,
        statuses=[status.value for status in RunStatus],
        problems=problems,
        older=chosen.query(cursor=following) if following else None,
        live=chosen.cursor is None,
    )


@page
async def runs_rows(request: Request) -> Response:
    """The first page's rows, for the runs page to poll."""
    viewer = await session.viewer(request)
    found, _following, _problems = await _page(request, viewer, filters(request))
    return pages.fragment("_run_rows.html", runs=found)
