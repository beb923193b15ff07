"""A sync caller's answer: the run's reply once it is there, else 202 with the run's id.

Invariant: NOTIFY is a hint. The caller watches its run's events before the run can reply
(the watch is registered before the run or the resume is committed), then waits for an
event or a (jittered) poll interval and reads the run — so it gets its reply even when the
run is finished by another process and the notification is lost. A worker in this process
hands the committed reply over directly (`Watch.value`), sparing the read.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any
from uuid import UUID

from starlette.responses import JSONResponse, Response

from app.flows import control
from app.flows.model import Reply, RunStatus
from app.signals import Watch
from app.web.schemas import RunAccepted, RunEnded

RUN_ID_HEADER = "x-sluice-run-id"
# Headers a respond step cannot set: the server computes them.
_RESERVED_REPLY_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


async def answer(
    state: Any, run_id: UUID, watching: Watch, *, read_first: bool = False
) -> Response:
    """The reply of run `run_id`, watched (by `watching`) since before it could reply — or,
    with `read_first`, since before the first read; 202 when none comes within
    SLUICE_SYNC_TIMEOUT_SECONDS."""
    settings = state.settings
    deadline = time.monotonic() + settings.sync_timeout_seconds
    if read_first and (found := await _read(state, run_id)) is not None:
        return found
    while True:
        if isinstance(watching.value, Reply):
            return response(run_id, watching.value)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return accepted(run_id)
        wait = min(remaining, settings.poll_interval_seconds * random.uniform(0.8, 1.2))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watching.wait(), wait)
        if isinstance(watching.value, Reply):
            continue
        watching.clear()  # listen first, then read: an event from now on is not lost
        if (found := await _read(state, run_id)) is not None:
            return found


async def _read(state: Any, run_id: UUID) -> Response | None:
    """The answer the run gives now, if it has one (or is gone)."""
    async with state.pool.connection() as conn:
        reply = await control.reply(conn, run_id)
    if reply is None:
        return accepted(run_id)
    return response(run_id, reply) if reply.ready else None


def accepted(run_id: UUID) -> JSONResponse:
    return JSONResponse(
        RunAccepted(run_id=str(run_id)), status_code=202, headers={RUN_ID_HEADER: str(run_id)}
    )


def response(run_id: UUID, reply: Reply) -> Response:
    headers = {RUN_ID_HEADER: str(run_id)}
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
        RunEnded(run_id=str(run_id), status=reply.status, error=last_line(reply.error)),
        status_code=500,
        headers=headers,
    )


def last_line(error: str | None) -> str | None:
    """What a public caller learns of a failure: its last line ("ValueError: boom"); the
    traceback stays in the run, for the project's keys."""
    if error is None:
        return None
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    return lines[-1] if lines else error
