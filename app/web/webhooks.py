"""Webhooks start runs; resume URLs continue them; sync callers wait for the reply.

Invariants kept here:

* Nothing accepted is lost: 202 (or a sync reply) is sent only after the run and its job
  are committed.
* NOTIFY is a hint: a sync caller listens for its run's events first, then reads the run,
  then waits for an event or a (jittered) poll interval, and reads again — so it gets its
  reply even when the run is finished by another process and the notification is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import random
import re
import time
import uuid
from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app import metrics
from app.flows import control, resume
from app.flows.control import RunBudget
from app.flows.model import Reply, RunStatus
from app.signals import Watch
from app.web.body import read_limited
from app.web.errors import ApiError

SIGNATURE_HEADER = "x-sluice-signature"
# Headers not kept in a run's trigger: credentials stay out of the database.
_UNSTORED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
# Headers a respond step cannot set: the server computes them.
_RESERVED_REPLY_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


def parse_uuid(raw: str, what: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise ApiError(404, f"no {what} {raw!r}") from None


# A NUL byte, or an escaped NUL in JSON (one preceded by an even number of backslashes).
_NUL = re.compile(rb"\x00|(?<!\\)(?:\\\\)*\\u0000")


def decode_body(raw: bytes, content_type: str | None) -> Any:
    """JSON when it parses (required when the content type says JSON), else text; an empty
    body is an empty object. NUL characters, which PostgreSQL cannot store, are refused."""
    if _NUL.search(raw):
        raise ApiError(400, "the body contains a NUL character (\\u0000), which cannot be stored")
    if not raw.strip():
        return {}
    declared_json = content_type is not None and (
        content_type.split(";")[0].strip().lower().endswith(("/json", "+json"))
    )
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        if declared_json:
            raise ApiError(400, f"malformed JSON: {exc}") from None
    return raw.decode("utf-8", errors="replace")


def _trigger(request: Request, raw: bytes) -> dict[str, Any]:
    query = dict(request.query_params)
    if any("\x00" in key + value for key, value in query.items()):
        raise ApiError(400, "the query contains a NUL character, which cannot be stored")
    return {
        "body": decode_body(raw, request.headers.get("content-type")),
        "headers": {
            name: value for name, value in request.headers.items() if name not in _UNSTORED_HEADERS
        },
        "query": query,
    }


def _check_signature(secret: str, raw: bytes, header: str | None) -> None:
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    if header is None:
        raise ApiError(401, f"missing {SIGNATURE_HEADER}: this flow's webhook must be signed")
    if not hmac.compare_digest(expected.encode(), header.strip().lower().encode()):
        raise ApiError(401, f"invalid {SIGNATURE_HEADER}: expected sha256=<hex HMAC of the body>")


async def webhook(request: Request) -> Response:
    return await _webhook(request, sync=False)


async def webhook_sync(request: Request) -> Response:
    return await _webhook(request, sync=True)


async def _webhook(request: Request, *, sync: bool) -> Response:
    state = request.state
    settings = state.settings
    flow_id = parse_uuid(request.path_params["flow_id"], "flow")
    raw = await read_limited(request, settings.max_body_bytes)
    trigger = _trigger(request, raw)
    run_id = uuid.uuid4()
    # Watched before the run exists, its reply cannot be missed: no first read is needed.
    with state.run_watchers.watch(str(run_id)) as replied:
        async with state.pool.connection() as conn:
            started = await control.start_webhook_run(
                conn, run_id, flow_id, trigger, RunBudget.of(settings)
            )
            if not started:
                await _start_signed_run(request, conn, run_id, flow_id, raw, trigger)
        state.queue.wake()
        if not sync:
            response: Response = _accepted(run_id)
        else:
            reply = await wait_for_reply(
                state,
                run_id,
                settings.sync_timeout_seconds,
                settings.poll_interval_seconds,
                watching=replied,
            )
            response = _accepted(run_id) if reply is None else reply_response(run_id, reply)
    metrics.WEBHOOKS.inc(mode="sync" if sync else "async", code=str(response.status_code))
    return response


async def _start_signed_run(
    request: Request,
    conn: Any,
    run_id: UUID,
    flow_id: UUID,
    raw: bytes,
    trigger: dict[str, Any],
) -> None:
    """The slow path: the flow is unknown, disabled, or wants a signed body."""
    state = request.state
    target = await control.find_webhook_flow(conn, flow_id)
    if target is None:
        raise ApiError(404, f"no enabled flow {flow_id}")
    if target.secret is not None:
        _check_signature(target.secret, raw, request.headers.get(SIGNATURE_HEADER))
    async with conn.transaction():
        await control.create_run(conn, target, trigger, RunBudget.of(state.settings), run_id=run_id)


async def resume_run(request: Request) -> Response:
    return await _resume(request, sync=False)


async def resume_run_sync(request: Request) -> Response:
    return await _resume(request, sync=True)


async def _resume(request: Request, *, sync: bool) -> Response:
    state = request.state
    run_id = parse_uuid(request.path_params["run_id"], "run")
    not_found = ApiError(404, "no such run, or the token does not match a waiting step")
    async with state.pool.connection() as conn:
        target = await control.resume_target(conn, run_id)
    if target is None:
        raise not_found
    key = resume.verify(target.resume_secret, request.path_params["token"])
    if key is None:
        raise not_found
    raw = await read_limited(request, state.settings.max_body_bytes)
    payload = decode_body(raw, request.headers.get("content-type"))
    if target.status.final:
        raise ApiError(409, f"the run has ended ({target.status}); nothing to resume")
    with state.run_watchers.watch(str(run_id)) as replied:
        async with state.pool.connection() as conn, conn.transaction():
            resumed = await control.complete_waitpoint(conn, run_id, key, "webhook", payload)
            if resumed and sync:
                await control.clear_response(conn, run_id)
        if not resumed:
            raise ApiError(409, f"step '{key}' was resumed already (or timed out)")
        state.queue.wake()
        if sync:
            settings = state.settings
            reply = await wait_for_reply(
                state,
                run_id,
                settings.sync_timeout_seconds,
                settings.poll_interval_seconds,
                watching=replied,
            )
            return _accepted(run_id) if reply is None else reply_response(run_id, reply)
    return JSONResponse(
        {"run_id": str(run_id), "step": key, "status": "resumed"},
        status_code=202,
        headers={"x-sluice-run-id": str(run_id)},
    )


def _accepted(run_id: UUID) -> JSONResponse:
    return JSONResponse(
        {"run_id": str(run_id)}, status_code=202, headers={"x-sluice-run-id": str(run_id)}
    )


async def wait_for_reply(
    state: Any,
    run_id: UUID,
    within_seconds: float,
    poll_seconds: float,
    *,
    watching: Watch | None = None,
) -> Reply | None:
    """The run's reply (its response, or its end); None when `within_seconds` pass first.

    `watching` is the run's watcher event when the caller registered it before the run
    could reply (then the first read is skipped); otherwise one is registered here.
    """
    if watching is None:
        with state.run_watchers.watch(str(run_id)) as event:
            return await _await_reply(state, run_id, event, within_seconds, poll_seconds, True)
    return await _await_reply(state, run_id, watching, within_seconds, poll_seconds, False)


async def _await_reply(
    state: Any,
    run_id: UUID,
    event: Watch,
    within_seconds: float,
    poll_seconds: float,
    read_first: bool,
) -> Reply | None:
    deadline = time.monotonic() + within_seconds
    read = read_first
    while True:
        if isinstance(event.value, Reply):
            # Handed over by the engine in this process, after its commit.
            return event.value
        if read:
            event.clear()  # listen first, then read: an event from now on is not lost
            async with state.pool.connection() as conn:
                reply = await control.reply(conn, run_id)
            if reply is None or reply.response is not None or reply.status.final:
                return reply
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        wait = min(remaining, poll_seconds * random.uniform(0.8, 1.2))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), wait)
        read = True


def reply_response(run_id: UUID, reply: Reply) -> Response:
    headers = {"x-sluice-run-id": str(run_id)}
    if reply.response is not None:
        given = {
            str(name).lower(): str(value)
            for name, value in (reply.response.get("headers") or {}).items()
            if str(name).lower() not in _RESERVED_REPLY_HEADERS
        }
        body = reply.response.get("body")
        status = int(reply.response.get("status", 200))
        if isinstance(body, str):
            given.setdefault("content-type", "text/plain; charset=utf-8")
            return Response(body, status_code=status, headers={**given, **headers})
        return JSONResponse(body, status_code=status, headers={**given, **headers})
    if reply.status is RunStatus.SUCCEEDED:
        return JSONResponse(reply.output, status_code=200, headers=headers)
    return JSONResponse(
        {"run_id": str(run_id), "status": str(reply.status), "error": reply.error},
        status_code=500,
        headers=headers,
    )
