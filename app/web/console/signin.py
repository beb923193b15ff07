"""Signing in and out, and the admin's project picker."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.web.console import pages, session
from app.web.console.pages import page


def _next(raw: object) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    if isinstance(raw, str) and raw.startswith("/console") and "//" not in raw:
        return raw
    return "/console"


@page
async def sign_in_form(request: Request) -> Response:
    anonymous = session.anonymous(request)
    response = pages.render(
        request,
        "sign_in.html",
        None,
        token=anonymous.csrf,
        next=_next(request.query_params.get("next")),
        failed=False,
    )
    session.store(request, response, anonymous)
    return response


@page
async def sign_in(request: Request) -> Response:
    form = await request.form()
    anonymous = session.read(request)
    if anonymous is None:
        raise session.CsrfRefused
    session.check_csrf(anonymous, form)
    key = form.get("key")
    started = await session.sign_in(request, key.strip()) if isinstance(key, str) else None
    if started is None:
        return pages.render(
            request,
            "sign_in.html",
            None,
            status=401,
            token=anonymous.csrf,
            next=_next(form.get("next")),
            failed=True,
        )
    response = pages.back_to(request, _next(form.get("next")))
    session.store(request, response, started)
    return response


@page
async def sign_out(request: Request) -> Response:
    current = session.read(request)
    if current is None:
        return pages.back_to(request, "/console/sign-in")
    session.check_csrf(current, await request.form())
    response = pages.back_to(request, "/console/sign-in")
    session.store(request, response, None)
    return response


@page
async def pick_project(request: Request) -> Response:
    """The admin's choice of project for the pages."""
    viewer = await session.viewer(request)
    form = await request.form()
    session.check_csrf(viewer.session, form)
    raw = form.get("project")
    chosen = next((p.id for p in viewer.projects if str(p.id) == raw), None)
    if chosen is None:
        raise pages.NotFound("No such project.")
    response = pages.back_to(request, _next(form.get("next")))
    picked = session.Session(
        viewer.session.csrf, viewer.session.key_prefix, viewer.session.fingerprint, chosen
    )
    session.store(request, response, picked)
    return response
