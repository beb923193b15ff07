"""Approval pages: a resume URL opened in a browser, for people outside the console.

``GET /resume/{run_id}/{token}`` shows what the run waits for, a button per choice and the
step's form; the page POSTs the form back to the same URL, and the decision (choice,
comment, fields, who, when) becomes the step's output. A POST counts as the page's only
when it is a form that asks for HTML back (``Accept: text/html``); any other POST is a
machine's, answered as before (`app.web.webhooks`).

Invariant: the token is checked (in constant time) before anything of the run is shown,
and the page is rendered with autoescaping and served with headers that keep the token to
itself: no caching, no Referer, no framing, and a policy that allows no script.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from app.flows import control, decisions, resume, waits
from app.flows.definition import WaitForWebhookStep
from app.web import payloads
from app.web.body import read_limited
from app.web.errors import ApiError

HTML = "text/html"
_HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}
_NEGATIVE = frozenset({"reject", "deny", "decline", "cancel", "abort", "no"})
NOT_FOUND = "no such run, or the token does not match a waiting step"


def wants_html(request: Request) -> bool:
    return HTML in request.headers.get("accept", "")


def from_page(request: Request) -> bool:
    """Whether a POST to a resume URL is an approval page's form."""
    kind = payloads.media_type(request.headers.get("content-type"))
    return kind in (payloads.URLENCODED, payloads.MULTIPART) and wants_html(request)


async def approval_page(request: Request) -> Response:
    """The approval page of a waiting step (HTML): what the run waits for, a button per
    choice, an optional comment and the step's form; or what was decided."""
    wait = await _verified(request)
    if wait is None or wait.step is None:
        return _not_found(request)
    if wait.decided or wait.status.final:
        return _outcome(wait, 200)
    return _form(request, wait, {}, {}, 200)


async def submit(request: Request) -> Response:
    """The approval page's POST: the decision, checked against the step, resumes it."""
    wait = await _verified(request)
    if wait is None or wait.step is None:
        return _not_found(request)
    state = request.state
    raw = await read_limited(request)
    form = (await payloads.decode(raw, request.headers, state.settings))["body"]
    if wait.decided or wait.status.final:
        return _outcome(wait, 409)
    fields = {
        name.removeprefix("field."): value
        for name, value in form.items()
        if name.startswith("field.")
    }
    try:
        decision = decisions.decide(
            wait.step.choices,
            wait.step.form,
            choice=form.get("choice"),
            comment=form.get("comment"),
            fields=fields,
            by=form.get("by"),
            at=datetime.now(UTC),
            from_form=True,
        )
    except decisions.DecisionError as exc:
        problems = {problem["path"]: problem["message"] for problem in exc.problems}
        return _form(request, wait, form, problems, 400)
    async with state.pool.connection() as conn:
        async with conn.transaction():
            resumed = await control.complete_waitpoint(
                conn, wait.run_id, wait.key, "webhook", decision
            )
        if not resumed:
            again = await waits.find(conn, wait.run_id, wait.key)
            return _outcome(again or wait, 409)
    state.queue.wake()
    label = decisions.choice_label(decision["choice"])
    return _render(
        "decided.html",
        200,
        heading=f"{label} — the run continues",
        message="Thank you: your decision is recorded, and the run goes on with it.",
        decision=decision,
        labels=_labels(wait.step),
        wait=None,
    )


def not_found_page() -> Response:
    return _render(
        "decided.html",
        404,
        heading="This link does not work",
        badge="Not found",
        message="There is no such run, or the link is not the one its flow gave out. "
        "Check that the whole link was copied.",
        decision=None,
        wait=None,
    )


async def _verified(request: Request) -> waits.StepWait | None:
    """The run and step the URL's token names; None when either is wrong."""
    try:
        run_id = UUID(request.path_params["run_id"])
    except ValueError:
        return None
    token = request.path_params["token"]
    key = resume.step_key(token) or ""
    async with request.state.pool.connection() as conn:
        found = await waits.find(conn, run_id, key)
    if found is None or not key or resume.verify(found.resume_secret, token) != key:
        return None
    return found


def _not_found(request: Request) -> Response:
    if not wants_html(request):
        raise ApiError(404, NOT_FOUND)
    return not_found_page()


def _form(
    request: Request,
    wait: waits.StepWait,
    values: Mapping[str, Any],
    problems: Mapping[str, str],
    status: int,
) -> Response:
    assert wait.step is not None
    return _render(
        "page.html",
        status,
        heading=wait.step.title or f"Step “{waits.step_id_of(wait.key)}” is waiting for you",
        step=wait.step,
        wait=wait,
        action=request.url.path,
        values={name: value for name, value in values.items() if isinstance(value, str)},
        problems=problems,
    )


def _outcome(wait: waits.StepWait, status: int) -> Response:
    """What became of a step that is not waiting any more."""
    decision = wait.payload if _is_decision(wait.payload) else None
    if decision is not None:
        heading, message = "Already decided", "Nothing is left to decide here."
    elif wait.step_status == "TIMEOUT":
        heading, message = "Too late", "The wait timed out before a decision was made."
    elif wait.state == "completed":
        when = f" at {_when(wait.completed_at)}" if wait.completed_at else ""
        heading, message = "Already resumed", f"A request to this step's URL resumed it{when}."
    else:
        heading = "The run has ended"
        message = f"The run ended ({wait.status}) before a decision was made."
    badge = "Timed out" if wait.step_status == "TIMEOUT" else "Closed"
    return _render(
        "decided.html",
        status,
        heading=heading,
        message=message,
        badge=badge,
        decision=decision,
        labels=_labels(wait.step),
        wait=wait,
    )


def _labels(step: WaitForWebhookStep | None) -> dict[str, str]:
    return {field.name: field.title for field in step.form} if step is not None else {}


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return "—" if value is None or value == "" else str(value)


def _is_decision(payload: Any) -> bool:
    return isinstance(payload, dict) and isinstance(payload.get("choice"), str) and "at" in payload


def _render(template: str, status: int, **context: Any) -> HTMLResponse:
    text = _templates().get_template(f"approval/{template}").render(**context)
    return HTMLResponse(text, status_code=status, headers=_HEADERS)


@functools.cache
def _templates() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("app.web", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals.update(
        label=decisions.choice_label, style=_style, tone=_tone, when=_when, shown=_shown
    )
    return environment


def _style(choice: str, first: bool) -> str:
    """A choice button's class: a "no" is red, the first other choice the main one."""
    if choice in _NEGATIVE:
        return "danger"
    return "primary" if first else ""


def _tone(choice: str) -> str:
    return "danger" if choice in _NEGATIVE else "ok"


def _when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
