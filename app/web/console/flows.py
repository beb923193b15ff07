"""Flows: the list with recent runs and failure rates; a flow's versions, definition,
webhook URLs, recent runs and enabled switch (the API's own core call)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from app import projects
from app.flows import console_views, run_views, store
from app.web.console import pages, session
from app.web.console.pages import page

WINDOW = timedelta(hours=24)
"""Recent runs: created within this window."""


def _urls(
    request: Request, project: str, flow: store.FlowSummary | store.FlowDetail
) -> dict[str, str]:
    base = str(request.base_url).rstrip("/")
    return {"stable": f"{base}/webhooks/{project}/{flow.name}", "id": f"{base}/webhooks/{flow.id}"}


async def _project_name(conn: AsyncConnection[Any], project_id: int) -> str:
    project = await projects.get_project(conn, project_id)
    return "" if project is None else project.name


@page
async def flows_page(request: Request) -> Response:
    viewer = await session.viewer(request)
    found: list[store.FlowSummary] = []
    stats: dict[str, tuple[int, int]] = {}
    project = ""
    if viewer.project_id is not None:
        async with request.state.pool.connection() as conn:
            found = await store.list_flows(conn, viewer.project_id)
            stats = await console_views.flow_stats(
                conn, viewer.project_id, datetime.now(UTC) - WINDOW
            )
            project = await _project_name(conn, viewer.project_id)
    return pages.render(
        request,
        "flows.html",
        viewer,
        flows=found,
        stats=stats,
        urls={flow.name: _urls(request, project, flow) for flow in found},
    )


@page
async def flow_page(request: Request) -> Response:
    viewer = await session.viewer(request)
    name = request.path_params["name"]
    if viewer.project_id is None:
        raise pages.NotFound(f"No flow {name}.")
    async with request.state.pool.connection() as conn:
        flow = await store.get(conn, viewer.project_id, name)
        if flow is None:
            raise pages.NotFound(f"No flow {name}.")
        versions = await console_views.flow_versions(conn, flow.id)
        shown = flow.version
        raw = request.query_params.get("version", "")
        if raw.isdigit() and any(v.version == int(raw) for v in versions):
            shown = int(raw)
        definition = await console_views.flow_version(conn, flow.id, shown)
        recent, _following = await run_views.list_runs(
            conn, viewer.project_id, flow=name, status=None, limit=20, cursor=None
        )
        stats = await console_views.flow_stats(conn, viewer.project_id, datetime.now(UTC) - WINDOW)
        project = await _project_name(conn, viewer.project_id)
    return pages.render(
        request,
        "flow.html",
        viewer,
        flow=flow,
        versions=versions,
        shown=shown,
        definition=definition,
        definition_yaml=yaml.safe_dump(definition, sort_keys=False, allow_unicode=True),
        runs=recent,
        stats=stats.get(name, (0, 0)),
        urls=_urls(request, project, flow),
    )


@page
async def switch_flow(request: Request) -> Response:
    """Enable or disable a flow."""
    viewer = await session.viewer(request)
    form = await request.form()
    session.check_csrf(viewer.session, form)
    name = request.path_params["name"]
    enabled = form.get("enabled") == "true"
    if viewer.project_id is None:
        raise pages.NotFound(f"No flow {name}.")
    async with request.state.pool.connection() as conn:
        if not await store.set_enabled(conn, viewer.project_id, name, enabled):
            raise pages.NotFound(f"No flow {name}.")
    return pages.back_to(request, f"/console/flows/{name}")
