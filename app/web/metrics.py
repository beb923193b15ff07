"""``GET /metrics``: this process's metrics plus run and queue gauges read at scrape time."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app import metrics
from app.flows import run_views


async def metrics_text(request: Request) -> Response:
    async with request.state.pool.connection() as conn:
        live = await run_views.live_runs_by_status(conn)
        depth = await run_views.queue_depth(conn)
    runs_live = metrics.GaugeFamily(
        "sluice_runs", "Runs not yet finished, by status (all processes).", ("status",)
    )
    for status in ("QUEUED", "RUNNING", "PAUSED"):
        runs_live.add(live.get(status, 0), status=status)
    jobs = metrics.GaugeFamily(
        "sluice_queue_jobs",
        "Jobs in the queue: ready to run, scheduled for later, running, dead.",
        ("state",),
    )
    for state, count in depth.items():
        jobs.add(count, state=state)
    text = metrics.REGISTRY.render(extra=[runs_live, jobs])
    return Response(text, media_type=metrics.CONTENT_TYPE)
