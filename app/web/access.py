"""The access log (``SLUICE_ACCESS_LOG``): one line per HTTP request, on ``sluice.access``.

A pure ASGI middleware (no response buffering, no task per request): it notes the status
and the run id header as the response starts and logs when the request ends. The line holds
the method, the path without its query string (tokens travel in queries), the status, the
duration in milliseconds and, for a webhook or resume request, the run id.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import logs
from app.web.replies import RUN_ID_HEADER

log = logging.getLogger("sluice.access")

_RUN_ID = RUN_ID_HEADER.encode("latin-1")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets if the app raises before it answers
        run_id: str | None = None

        async def noting(message: Message) -> None:
            nonlocal status, run_id
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == _RUN_ID:
                        run_id = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, noting)
        finally:
            method, path = scope["method"], scope["path"]
            elapsed = round((time.perf_counter() - start) * 1000, 1)
            fields = logs.fields(
                method=method, path=path, status=status, duration_ms=elapsed, run_id=run_id
            )
            log.info("request", extra=fields)
