"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
import logging

import psycopg
from psycopg_pool import PoolTimeout
from starlette.requests import Request
from starlette.responses import JSONResponse

from app import schema
from app.web.schemas import Health, NotReady, Ready, SchemaAtHead, SchemaBehind

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 2.0


async def health(_request: Request) -> JSONResponse:
    """Liveness: the process serves HTTP."""
    return JSONResponse(Health(status="ok"))


async def ready(request: Request) -> JSONResponse:
    """Readiness: the database answers and its schema is at head."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            async with request.state.pool.connection(timeout=READY_TIMEOUT_SECONDS) as conn:
                status = await schema.status(conn)
    except (psycopg.Error, PoolTimeout, TimeoutError) as exc:
        log.warning("not ready: database unreachable (%s)", exc.__class__.__name__)
        unreachable = NotReady(status="unavailable", error="database unreachable")
        return JSONResponse(unreachable, status_code=503)
    if not status.at_head:
        behind = NotReady(
            status="unavailable",
            error="schema not at head; run `sluice migrate`",
            schema=SchemaBehind(current=status.current, head=status.head),
        )
        return JSONResponse(behind, status_code=503)
    at_head = SchemaAtHead(current=status.head)  # the current revision, typed as one
    return JSONResponse(Ready(status="ready", schema=at_head))
