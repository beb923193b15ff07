"""The webhook latency histogram and server spans: each webhook route's app, wrapped once
when the route table is built, times its requests under the route's template (never the
raw path, whose ids would make a series per flow or run) and the status code it answered,
and (tracing on) serves each in a server span joined to the caller's `traceparent`."""

from __future__ import annotations

import time

from prometheus_client.metrics import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics, tracing


def timed(app: ASGIApp, method: str, route: str) -> ASGIApp:
    """`app`, observing `sluice_webhook_duration_seconds{route=route, code}` per request. A
    request that raised before answering counts as a 500 (what the catch-all answers)."""
    series: dict[int, Histogram] = {}
    name = f"{method} {route}"

    async def timed_app(scope: Scope, receive: Receive, send: Send) -> None:
        if tracing.active():
            await _traced(scope, receive, send)
        else:
            await _timed(scope, receive, send)

    async def _traced(scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        attributes = {"http.request.method": scope["method"], "http.route": route}
        with tracing.span(name, attributes, kind="server", headers=headers) as span:
            code = await _timed(scope, receive, send)
            span.set("http.response.status_code", code)
            run_id = scope.get("state", {}).get("run_id")
            if run_id is not None:
                span.set("sluice.run_id", str(run_id))
            if code >= 500:
                span.fail(f"answered {code}")

    async def _timed(scope: Scope, receive: Receive, send: Send) -> int:
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
        return code

    return timed_app
