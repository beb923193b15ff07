"""The webhook latency histogram: each webhook route's app, wrapped once when the route
table is built, times its requests under the route's template (never the raw path, whose
ids would make a series per flow or run) and the status code it answered."""

from __future__ import annotations

import time

from prometheus_client.metrics import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics


def timed(app: ASGIApp, route: str) -> ASGIApp:
    """`app`, observing `sluice_webhook_duration_seconds{route=route, code}` per request. A
    request that raised before answering counts as a 500 (what the catch-all answers)."""
    series: dict[int, Histogram] = {}

    async def timed_app(scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        code = 500

        async def sending(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = int(message["status"])
            await send(message)

        try:
            await app(scope, receive, sending)
        finally:
            child = series.get(code)
            if child is None:
                child = series[code] = metrics.WEBHOOK_DURATION.labels(route=route, code=str(code))
            child.observe(time.perf_counter() - started)

    return timed_app
