"""Webhooks start runs; resume URLs continue them; sync callers wait for the reply
(`app.web.replies`).

Invariant kept here: nothing accepted is lost. 202 (or a sync reply) is sent only after the
run and its job are committed; a sync caller watches its run before the commit, so no reply
can pass unseen.
"""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import psycopg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app import metrics, run_log, tracing
from app.flows import control, resume
from app.flows.control import RunBudget
from app.web import approvals, payloads, replies, senders
from app.web.body import read_limited
from app.web.errors import ApiError
from app.web.schemas import Resumed

SIGNATURE_HEADER = "x-sluice-signature"
IDEMPOTENCY_HEADER = "idempotency-key"
MAX_KEY_CHARS = 255
# Headers not kept in a run's trigger: credentials stay out of the database.
_UNSTORED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def parse_uuid(raw: str, what: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise ApiError(404, f"no {what} {raw!r}") from None


async def _trigger(request: Request, raw: bytes) -> dict[str, Any]:
    query = dict(request.query_params)
    if any("\x00" in key + value for key, value in query.items()):
        raise ApiError(400, "the query contains a NUL character, which cannot be stored")
    return {
        **await payloads.decode(raw, request.headers, request.state.settings),
        "headers": {
            name: value for name, value in request.headers.items() if name not in _UNSTORED_HEADERS
        },
        "query": query,
    }


async def trigger_flow(request: Request) -> Response:
    """Start a run of the flow."""
    return await _webhook(request, parse_uuid(request.path_params["flow_id"], "flow"), sync=False)


async def trigger_flow_sync(request: Request) -> Response:
    """Start a run and wait for its reply."""
    raw = request.path_params["flow_id"]
    if not _is_uuid(raw):
        # /webhooks/{project}/sync: the stable URL of a flow named "sync".
        flow = await _named(request, raw, "sync")
        return await _webhook(request, flow, sync=False)
    return await _webhook(request, UUID(raw), sync=True)


async def trigger_named_flow(request: Request) -> Response:
    """Start a run of the flow named in the URL (stable across redeploys and recreations)."""
    params = request.path_params
    return await _webhook(
        request, await _named(request, params["project"], params["flow"]), sync=False
    )


async def trigger_named_flow_sync(request: Request) -> Response:
    """Start a run of the flow named in the URL and wait for its reply."""
    params = request.path_params
    return await _webhook(
        request, await _named(request, params["project"], params["flow"]), sync=True
    )


def _is_uuid(raw: str) -> bool:
    try:
        UUID(raw)
    except ValueError:
        return False
    return True


async def _named(request: Request, project: str, flow: str) -> UUID:
    async with request.state.pool.connection() as conn:
        found = await control.find_flow_by_slugs(conn, project, flow)
    if found is None:
        raise ApiError(404, f"no enabled flow {flow!r} in project {project!r}")
    return found


async def _webhook(request: Request, flow_id: UUID, *, sync: bool) -> Response:
    state = request.state
    settings = state.settings
    raw = await read_limited(request)
    trigger = await _trigger(request, raw)
    key = _idempotency_key(request, settings.idempotency_window_seconds)
    run_id = uuid.uuid4()
    # Watched before the run exists, its reply cannot be missed: no first read is needed.
    with state.run_watchers.watch(str(run_id)) as replied:
        async with (
            state.pool.connection() as conn,
            tracing.aspan("enqueue", {"sluice.run_id": str(run_id)}) as enqueue,
        ):
            started = await control.start_webhook_run(
                conn,
                run_id,
                flow_id,
                trigger,
                RunBudget.of(settings),
                key=key,
                traceparent=enqueue.traceparent,
            )
            answering = (
                run_id
                if started
                else await _slow_path(request, conn, run_id, flow_id, raw, trigger, key)
            )
        if isinstance(answering, Response):  # a sender's handshake: no run
            return answering
        state.run_id = answering
        if answering == run_id:
            state.queue.wake()
            run_log.transition(run_log.Transition.ACCEPTED, run_id, flow_id=flow_id, via="webhook")
            response = (
                await tracing.within("reply", replies.answer(state, run_id, replied))
                if sync
                else replies.accepted(run_id)
            )
        else:
            response = await _answer_again(state, answering, sync=sync)
    metrics.WEBHOOKS.labels(mode="sync" if sync else "async", code=str(response.status_code)).inc()
    return response


def _idempotency_key(request: Request, window_seconds: float) -> control.Key | None:
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_KEY_CHARS:
        raise ApiError(400, f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_KEY_CHARS} characters")
    return control.Key(value, window_seconds)


async def _slow_path(
    request: Request,
    conn: Any,
    run_id: UUID,
    flow_id: UUID,
    raw: bytes,
    trigger: dict[str, Any],
    key: control.Key | None,
) -> UUID | Response:
    """The flow is unknown, disabled, or verifies its requests, or the request's key has a
    run already: the run that answers the request (a new one is `run_id`), or the answer
    to a sender's handshake (GitHub's ping, Slack's url_verification)."""
    target = await control.find_webhook_flow(conn, flow_id)
    if target is None:
        raise ApiError(404, f"no enabled flow {flow_id}")
    if target.webhook is None:
        raise ApiError(404, f"flow {flow_id} has no webhook trigger")
    verified = await senders.check(request, conn, target, raw, trigger["body"])
    if verified.answer is not None:
        return verified.answer
    if verified.event is not None:
        trigger["event"] = verified.event
    if key is None and verified.key is not None:
        key = control.Key(
            verified.key[:MAX_KEY_CHARS], request.state.settings.idempotency_window_seconds
        )
    if key is not None and (existing := await control.keyed_run(conn, flow_id, key)):
        return existing
    budget = RunBudget.of(request.state.settings)
    if await control.at_live_cap(conn, target.project_id, budget):
        raise ApiError(
            429,
            f"the project has {budget.max_live_runs} live runs (SLUICE_MAX_LIVE_RUNS); "
            "retry once some have ended",
        )
    taken = False
    async with conn.transaction() as tx:
        await control.create_run(
            conn, target, trigger, budget, run_id=run_id, traceparent=tracing.traceparent()
        )
        if key is not None and not await control.take_key(conn, flow_id, key, run_id):
            taken = True
            raise psycopg.Rollback(tx)  # a request with the same key won the race
    if not taken:
        return run_id
    existing = await control.keyed_run(conn, flow_id, key) if key is not None else None
    if existing is None:
        raise ApiError(409, f"{IDEMPOTENCY_HEADER} is in use by a run that is gone; use a new one")
    return existing


async def _answer_again(state: Any, run_id: UUID, *, sync: bool) -> Response:
    """A retried request (same Idempotency-Key): the first request's answer."""
    if not sync:
        return replies.accepted(run_id)
    with state.run_watchers.watch(str(run_id)) as replied:
        return await replies.answer(state, run_id, replied, read_first=True)


async def resume_run(request: Request) -> Response:
    """Continue a run waiting in a `wait_for_webhook` step; the body is its output (from
    the approval page: the decision made there)."""
    return await _resume(request, sync=False)


async def resume_run_sync(request: Request) -> Response:
    """Continue a waiting run and wait for its next reply."""
    return await _resume(request, sync=True)


async def _resume(request: Request, *, sync: bool) -> Response:
    if not sync and approvals.from_page(request):
        return await approvals.submit(request)
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
    raw = await read_limited(request)
    payload = (await payloads.decode(raw, request.headers, state.settings))["body"]
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
            return await replies.answer(state, run_id, replied)
    return JSONResponse(
        Resumed(run_id=str(run_id), step=key, status="resumed"),
        status_code=202,
        headers={replies.RUN_ID_HEADER: str(run_id)},
    )
