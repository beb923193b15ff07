"""A real local HTTP server (uvicorn on 127.0.0.1) for the `http` step's tests."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from worker.steps import METHODS


@dataclass
class Server:
    port: int
    release: asyncio.Event
    seen: list[str] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


def make_app(release: asyncio.Event) -> Starlette:
    async def json_(request: Request) -> Response:
        return JSONResponse({"hello": "world"}, headers={"X-Custom": "yes"})

    async def text(request: Request) -> Response:
        return PlainTextResponse("plain words")

    async def typed(request: Request) -> Response:
        return Response(request.query_params["body"], media_type=request.query_params["type"])

    async def echo(request: Request) -> Response:
        assert request.client is not None
        body = await request.body()
        return JSONResponse(
            {
                "method": request.method,
                "headers": dict(request.headers),
                "body": body.decode(),
                "client_port": request.client.port,
            }
        )

    async def status(request: Request) -> Response:
        code = int(request.path_params["code"])
        return PlainTextResponse(f"failed\nbadly {'x' * 300}", status_code=code)

    async def chain(request: Request) -> Response:
        left = int(request.path_params["left"])
        if left == 0:
            return JSONResponse({"arrived": True})
        return RedirectResponse(f"/chain/{left - 1}", 302)

    async def loop(request: Request) -> Response:
        return RedirectResponse("/loop", 302)

    async def redirect(request: Request) -> Response:
        code = int(request.query_params.get("code", "302"))
        return RedirectResponse(request.query_params["to"], code)

    async def hang(request: Request) -> Response:
        await release.wait()
        return PlainTextResponse("too late")

    async def sized(request: Request) -> Response:
        return Response(b"x" * int(request.path_params["size"]))

    async def endless(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            while not release.is_set() and not await request.is_disconnected():
                yield b"x" * 65536

        return StreamingResponse(chunks())

    async def bomb(request: Request) -> Response:
        return Response(gzip.compress(bytes(4_000_000)), headers={"Content-Encoding": "gzip"})

    async def cookie(request: Request) -> Response:
        response = PlainTextResponse("have one")
        response.set_cookie("session", "abc")
        return response

    return Starlette(
        routes=[
            Route("/json", json_),
            Route("/text", text),
            Route("/typed", typed),
            Route("/echo", echo, methods=sorted(METHODS)),
            Route("/status/{code}", status),
            Route("/chain/{left}", chain),
            Route("/loop", loop),
            Route("/redirect", redirect, methods=sorted(METHODS)),
            Route("/hang", hang),
            Route("/sized/{size}", sized),
            Route("/endless", endless),
            Route("/bomb", bomb),
            Route("/cookie", cookie),
        ]
    )


class _Uvicorn(uvicorn.Server):
    """uvicorn without its signal handlers: the test session owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[Server]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    # Listening before uvicorn starts: early connections wait in the backlog.
    sock.listen()
    state = Server(port=sock.getsockname()[1], release=asyncio.Event())
    app = make_app(state.release)

    async def recording(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            state.seen.append(scope["path"])
        await app(scope, receive, send)

    config = uvicorn.Config(recording, lifespan="off", log_config=None, access_log=False)
    uv = _Uvicorn(config)
    task = asyncio.create_task(uv.serve(sockets=[sock]))
    try:
        yield state
    finally:
        state.release.set()
        uv.should_exit = True
        await task
