"""Schedules over HTTP: when each of a project's schedules fires next and fired last."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from app.flows.triggers import ScheduleTrigger
from app.schedules import firing, rules
from app.web import auth, schemas
from app.web.schemas import reply


def view(
    index: int, trigger: ScheduleTrigger, last_run_at: datetime | None, *, enabled: bool
) -> dict[str, Any]:
    """A schedule as `schemas.Schedule` reads it; `next` is empty while it is paused."""
    upcoming = rules.upcoming(rules.Rule.of(trigger), datetime.now(UTC)) if enabled else []
    return {
        "index": index,
        "cron": trigger.cron,
        "every": trigger.every,
        "timezone": trigger.timezone,
        "overlap": trigger.overlap,
        "catch_up": trigger.catch_up,
        "next": upcoming,
        "last_run_at": last_run_at,
    }


async def list_schedules(request: Request) -> JSONResponse:
    """Every schedule of the project's flows, by flow name."""
    project_id = await auth.project_id(request)
    async with request.state.pool.connection() as conn:
        found = await firing.of_project(conn, project_id)
    listed = [
        schemas.ProjectSchedule.model_validate(
            {
                "flow": s.flow,
                "enabled": s.enabled,
                **view(s.position, s.trigger, s.last_run_at, enabled=s.enabled),
            }
        )
        for s in found
    ]
    return reply(schemas.ScheduleList(schedules=listed))
