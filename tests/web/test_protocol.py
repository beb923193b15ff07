"""Slow clients over real sockets: headers and bodies have deadlines, so a client sending a
byte a second cannot hold a connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.serve import bind
from app.web import body, errors
from app.web.protocol import with_header_timeout
from ops.ports import free_port
from tests.web.apps import app_settings

HEADER_SECONDS = 0.5
BODY_SECONDS = 0.6


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"size": len(await body.read_limited(request))})


async def health(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[int]:
    settings = app_settings("postgresql://unused", http_body_timeout_seconds=BODY_SECONDS)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Any]]:
        yield {"settings": settings}

    app = Starlette(
        routes=[Route("/echo", echo, methods=["POST"]), Route("/health", health)],
        exception_handlers=errors.HANDLERS,
        lifespan=lifespan,
    )
    port = free_port()
    # Bound first, as `sluice serve` does: connections wait in the backlog until uvicorn serves.
    sock = bind("127.0.0.1", port)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        lifespan="on",
        http=with_header_timeout(HEADER_SECONDS),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve([sock]))
    try:
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


async def read_all(reader: asyncio.StreamReader, within: float) -> bytes:
    return await asyncio.wait_for(reader.read(), within)


async def sent_partly(request: bytes) -> tuple[float, bytes, Any]:
    """How long the server took to answer `request` (the start of one), its head and body."""
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        started = time.monotonic()
        answer = await read_all(reader, 5)
        writer.close()
    head, _, text = answer.partition(b"\r\n\r\n")
    return time.monotonic() - started, head, json.loads(text)


async def test_headers_that_do_not_arrive_in_time_are_a_408_and_a_closed_connection() -> None:
    took, head, answer = await sent_partly(b"GET /health HTTP/1.1\r\nhost: x\r\n")

    assert took < HEADER_SECONDS + 1
    assert head.startswith(b"HTTP/1.1 408")
    assert b"application/json" in head
    assert "headers took longer" in answer["error"]


async def test_many_clients_trickling_bytes_are_all_cut_off() -> None:
    async with serving() as port:
        connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(40)]

        async def trickle(writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                for byte in b"POST /echo HTTP/1.1\r\nhost: x\r\n":
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.1)

        trickling = [asyncio.create_task(trickle(writer)) for _, writer in connections]
        answers = await asyncio.gather(*(read_all(reader, 5) for reader, _ in connections))
        for task in trickling:
            task.cancel()
        for _, writer in connections:
            writer.close()

    assert all(answer.startswith(b"HTTP/1.1 408") for answer in answers)


async def test_an_idle_connection_is_closed_and_a_prompt_one_is_served() -> None:
    async with serving() as port:
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        served = await read_all(reader, 5)
        closed = await read_all(idle_reader, 5)
        writer.close()
        idle_writer.close()

    assert served.startswith(b"HTTP/1.1 200")
    assert closed == b""


async def test_a_body_that_does_not_arrive_in_time_is_answered_408() -> None:
    took, head, answer = await sent_partly(
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{"
    )

    assert took < BODY_SECONDS + 1
    assert head.startswith(b"HTTP/1.1 408"), head
    assert "body took longer" in answer["error"]
