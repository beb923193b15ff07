"""``GET /metrics``: this process's metrics plus run and queue gauges read at scrape time."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app import gauges, metrics
from app.flows import run_views
from app.web import auth


async def metrics_text(request: Request) -> Response:
    auth.require_metrics_token(request)
    # A worker unseen for a lease TTL has lost its jobs: it no longer counts as live.
    stale = request.state.settings.lease_ttl_seconds
    async with request.state.pool.connection() as conn:
        live = await run_views.live_runs_by_status(conn)
        depth = await run_views.queue_depth(conn)
        health = await gauges.queue_health(conn, stale_seconds=stale)
    return Response(metrics.render(live, depth, health), media_type=metrics.CONTENT_TYPE)
