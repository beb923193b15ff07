"""Every error the HTTP API returns is JSON: an `Error`, ``{"error": message, ...details}``.

Invariant: no database fault is answered with a 500. A database that cannot be reached or
went away mid-request (a restart, a terminated backend, an outage: psycopg's
`OperationalError`, the pool's timeout) is a `503 {"error": "database unavailable"}` with
`Retry-After`; anything else unexpected is a JSON 500 without a traceback, with a
`request_id` that the log line of its traceback names. A client gone before its body was
read is a debug line, not an error.
Once a webhook's run exists, its id comes with the error, so the client can tell it was
accepted (and retry safely with its `Idempotency-Key`).
"""

from __future__ import annotations

import logging
import uuid
from typing import Unpack

import psycopg
from psycopg_pool import PoolClosed, PoolTimeout
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.web.replies import RUN_ID_HEADER
from app.web.schemas import Error, ErrorDetails

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1


class ApiError(Exception):
    """An expected failure with its HTTP status and a message naming the problem."""

    def __init__(self, status: int, message: str, **details: Unpack[ErrorDetails]) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


def run_of(request: Request, details: ErrorDetails) -> dict[str, str]:
    """The run id header (and `details["run_id"]`) of a request whose run exists already."""
    run_id = getattr(request.state, "run_id", None)
    if run_id is None:
        return {}
    details["run_id"] = str(run_id)
    return {RUN_ID_HEADER: str(run_id)}


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    details = ErrorDetails(**exc.details)
    headers = run_of(request, details)
    if exc.status in _UNREAD_BODY:
        headers["connection"] = "close"  # the rest of the body is not worth waiting for
    return JSONResponse(Error(error=exc.message, **details), exc.status, headers=headers)


_UNREAD_BODY = frozenset({408, 413})


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    return JSONResponse(Error(error=str(exc.detail)), exc.status_code, headers=headers)


async def database_unavailable(request: Request, exc: Exception) -> Response:
    # One line a request would flood the log in an outage; the pools' users say when the
    # database goes and comes back (`app.db.Outage`).
    log.debug("%s %s: database unavailable (%s)", request.method, request.url.path, _first(exc))
    details = ErrorDetails(retry_after_seconds=RETRY_AFTER_SECONDS)
    headers = {"retry-after": str(RETRY_AFTER_SECONDS), **run_of(request, details)}
    return JSONResponse(
        Error(error="database unavailable", **details), status_code=503, headers=headers
    )


async def client_disconnect(request: Request, exc: Exception) -> Response:
    log.debug("%s %s: the client disconnected before its body was read", *_line(request))
    return JSONResponse(Error(error="the client disconnected"), status_code=400)


async def internal_error(request: Request, exc: Exception) -> Response:
    """The last resort: logged with its traceback under a request id that the answer names
    (Starlette raises it on, to `Answered`)."""
    request_id = uuid.uuid4().hex
    log.error("request %s: %s %s failed", request_id, *_line(request), exc_info=exc)
    exc.add_note(f"{_NOTE}{request_id}")
    details = ErrorDetails(request_id=request_id)
    headers = run_of(request, details)
    body = Error(error="internal error; the server log has the details", **details)
    return JSONResponse(body, status_code=500, headers=headers)


_NOTE = "sluice request_id: "


class Answered:
    """The outermost layer of the served app: an error the catch-all answered and logged
    ends here, so the server does not log its traceback a second time."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if not any(note.startswith(_NOTE) for note in getattr(exc, "__notes__", ())):
                raise


def _line(request: Request) -> tuple[str, str]:
    return request.method, request.url.path


def _first(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


HANDLERS = {
    ApiError: api_error,
    HTTPException: http_error,
    psycopg.OperationalError: database_unavailable,
    PoolTimeout: database_unavailable,
    PoolClosed: database_unavailable,
    ClientDisconnect: client_disconnect,
    Exception: internal_error,
}
