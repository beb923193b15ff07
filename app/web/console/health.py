"""Workers and queue health (the admin key's view, like ``GET /api/v1/workers``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app import workers
from app.flows import console_views, run_views
from app.web.console import pages, session
from app.web.console.pages import page


@page
async def health_page(request: Request) -> Response:
    viewer = await session.viewer(request)
    if not viewer.admin:
        raise pages.Forbidden
    async with request.state.pool.connection() as conn:
        seen = await workers.recent(conn)
        depth = await run_views.queue_depth(conn)
        queue = await console_views.queue_health(conn)
        dead = await console_views.latest_dead_jobs(conn)
    return pages.render(
        request, "health.html", viewer, workers=seen, depth=depth, queue=queue, dead=dead
    )
