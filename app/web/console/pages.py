"""Rendering console pages: the Jinja2 environment (autoescaped templates shipped with the
package) and `page`, which turns what a handler raises into a console page.

Invariant: every console answer is HTML or a redirect — a missing thing is a 404 page, a
database away a 503 page, anything unexpected a 500 page naming a request id (its
traceback goes to the log, never to the page).
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import jinja2
import psycopg
from psycopg_pool import PoolClosed, PoolTimeout
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from app.web import errors, replies
from app.web.console import session

log = logging.getLogger(__name__)

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("app.web.console", "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


class NotFound(Exception):
    """The page's subject does not exist (or is another project's)."""


class Forbidden(Exception):
    """A page for the admin key only."""


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def _when(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{value / 60:.1f} min"


_ENV.filters["pretty"] = _pretty
_ENV.filters["when"] = _when
_ENV.filters["seconds"] = _seconds
_ENV.filters["last_line"] = replies.last_line
_ENV.filters["status_class"] = lambda status: str(status).lower().replace("_", "-")


def render(
    request: Request,
    template: str,
    viewer: session.Viewer | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    body = _ENV.get_template(template).render(
        request=request,
        viewer=viewer,
        csrf=viewer.session.csrf if viewer else "",
        now=datetime.now(UTC),
        **context,
    )
    return HTMLResponse(body, status_code=status)


def fragment(template: str, **context: Any) -> HTMLResponse:
    return HTMLResponse(_ENV.get_template(template).render(**context))


def _error(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    body = _ENV.get_template("error.html").render(
        request=request, viewer=None, csrf="", status=status, title=title, message=message
    )
    return HTMLResponse(body, status_code=status)


def back_to(request: Request, path: str) -> RedirectResponse:
    """After a form: back to a console page (303, so the browser GETs it)."""
    return RedirectResponse(path, status_code=303)


Handler = Callable[[Request], Awaitable[Response]]


def page(handler: Handler) -> Handler:
    """A console route: sign-in redirects, HTML errors."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except session.SignInNeeded:
            wanted = request.url.path if request.method == "GET" else "/console"
            target = f"/console/sign-in?next={quote(wanted)}"
            if request.headers.get("x-console-fragment"):
                return Response(status_code=401, headers={"x-console-sign-in": target})
            response: Response = RedirectResponse(target, status_code=303)
            session.store(request, response, None)
            return response
        except session.CsrfRefused:
            message = "The form's security token is missing or stale: reload the page and retry."
            return _error(request, 403, "Refused", message)
        except Forbidden:
            return _error(request, 403, "Admin only", "This page needs the admin key.")
        except NotFound as exc:
            return _error(request, 404, "Not found", str(exc) or "Nothing here.")
        except (psycopg.OperationalError, PoolTimeout, PoolClosed):
            message = "The database is unavailable; retry in a few seconds."
            response = _error(request, 503, "Unavailable", message)
            response.headers["retry-after"] = str(errors.RETRY_AFTER_SECONDS)
            return response
        except Exception as exc:
            request_id = uuid.uuid4().hex
            log.error(
                "request %s: %s %s failed",
                request_id,
                request.method,
                request.url.path,
                exc_info=exc,
            )
            message = f"Something went wrong; the server log names request {request_id}."
            return _error(request, 500, "Internal error", message)

    return wrapped


@page
async def not_found(request: Request) -> Response:
    raise NotFound(f"No console page at {request.url.path}.")
