"""Waiting for you: paused runs' pending wait_for_webhook steps, approved or rejected from
the console (with an optional comment and JSON fields), each linked to its approval page."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.flows import console_views, decisions, waits
from app.settings import Settings
from app.web.console import pages, session
from app.web.console.pages import page
from app.web.console.run import parse_run_id


@page
async def waiting_page(request: Request) -> Response:
    viewer = await session.viewer(request)
    settings: Settings = request.state.settings
    async with request.state.pool.connection() as conn:
        # The admin sees every project's waiting steps.
        waiting = await console_views.waiting_steps(
            conn, None if viewer.admin else viewer.project_id
        )
    return pages.render(
        request,
        "waiting.html",
        viewer,
        waiting=waiting,
        public_url=settings.resolved_public_url,
        problem=request.query_params.get("problem"),
        note=request.query_params.get("note"),
    )


def _fields(raw: object) -> tuple[Any, str | None]:
    if not isinstance(raw, str) or not raw.strip():
        return {}, None
    try:
        return json.loads(raw), None
    except ValueError:
        return None, "the fields are not JSON"


@page
async def decide(request: Request) -> Response:
    """Approve or reject one waiting step."""
    viewer = await session.viewer(request)
    form = await request.form()
    session.check_csrf(viewer.session, form)
    run_id = parse_run_id(request.path_params["run_id"])
    step_key = form.get("step")
    choice = form.get("choice")
    if not isinstance(step_key, str) or not isinstance(choice, str):
        raise pages.NotFound("No such waiting step.")
    async with request.state.pool.connection() as conn:
        waiting = await console_views.waiting_steps(
            conn, None if viewer.admin else viewer.project_id, run_id=run_id
        )
        step = next((step for step in waiting if step.step_key == step_key), None)
        if step is None:
            return pages.back_to(request, "/console/waiting?note=not-resumed")
        fields, problem = _fields(form.get("fields"))
        if problem is not None:
            return pages.back_to(request, "/console/waiting?problem=fields")
        comment = form.get("comment")
        decision = {
            "choice": choice,
            "comment": comment.strip() if isinstance(comment, str) and comment.strip() else None,
            "fields": fields,
        }
        by = "admin" if viewer.admin else f"key sk_{viewer.session.key_prefix}"
        try:
            await waits.resume_step(conn, step.project_id, run_id, step_key, decision, by=by)
        except waits.ResumeRefused:
            return pages.back_to(request, "/console/waiting?note=not-resumed")
        except decisions.DecisionError:
            return pages.back_to(request, "/console/waiting?problem=decision")
    request.state.queue.wake()
    return pages.back_to(request, "/console/waiting?note=resumed")
