"""`sluice serve`: the composition root that starts the app, the worker, or both.

This is the one module of `app` allowed to import `worker` (see the import-linter
contracts): it wires the roles of `SLUICE_CONTAINER_TYPE` into one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Coroutine, Iterator, Mapping
from typing import Any

import uvicorn

from app.settings import Settings
from app.signals import Watchers
from app.web import create_app
from app.web.errors import Answered
from app.web.protocol import with_header_timeout
from worker.executor import Handler
from worker.runner import Worker

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The process could not start serving; the message is one line fit for a terminal."""


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: `serve` owns SIGTERM/SIGINT for all roles."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(settings: Settings, handlers: Mapping[str, Handler] | None = None) -> None:
    """Run the roles of `settings.container_type` until SIGTERM/SIGINT (twice: at once).

    `handlers` replaces the worker's job handlers (tests run real processes with their own).
    A port that cannot be bound, or an app that fails to start, is a `StartupError`; the
    port is bound before the worker starts, so a worker that never served is never listed.
    """
    stop = asyncio.Event()
    sockets = [bind(settings.host, settings.port)] if settings.container_type.runs_app else []
    server: _Server | None = None
    # Shared by the app and the worker of one process: replies skip the database round trip,
    # and a new job wakes the worker directly while it has a free slot.
    run_watchers = Watchers()
    worker = (
        Worker(settings, handlers, run_watchers=run_watchers)
        if settings.container_type.runs_worker
        else None
    )
    if settings.container_type.runs_app:
        log.info("console at %s/console (sign in with an API key)", settings.resolved_public_url)
        app = create_app(
            settings,
            run_watchers=run_watchers,
            wake_local_worker=worker.wake_locally if worker is not None else None,
        )
        config = uvicorn.Config(
            Answered(app),
            host=settings.host,
            port=settings.port,
            log_config=None,
            lifespan="on",
            access_log=False,
            http=with_header_timeout(settings.http_header_timeout_seconds),
        )
        server = _Server(config)

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("second %s: stopping now", signal.Signals(signum).name)
            if server is not None:
                server.force_exit = True
            for task in tasks:
                task.cancel()
            return
        log.info("%s: stopping", signal.Signals(signum).name)
        stop.set()
        if server is not None:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)

    roles: list[Coroutine[Any, Any, Any]] = []
    if server is not None:
        roles.append(_serve_http(server, sockets))
    if worker is not None:
        roles.append(worker.run(stop))
    tasks = [asyncio.create_task(role) for role in roles]
    try:
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        # One role ending (the app failing to bind, say) stops the others.
        stop.set()
        if server is not None:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if not task.cancelled() and (error := task.exception()) is not None:
                raise error
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        for sock in sockets:
            sock.close()
    if server is not None and not server.started:
        raise StartupError(f"could not serve HTTP on {settings.host}:{settings.port}")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port`, or a `StartupError` saying why there is none."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise StartupError(f"cannot serve HTTP on {host}:{port}: {_reason(exc)}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot serve HTTP on {host}:{port}: {_reason(exc)}") from None
    sock.setblocking(False)
    return sock


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


async def _serve_http(server: _Server, sockets: list[socket.socket]) -> None:
    """uvicorn's serve, whose failure to start (a `SystemExit`, which would tear the event
    loop down past the worker's clean-up) is a `StartupError`."""
    try:
        await server.serve(sockets)
    except SystemExit:
        raise StartupError("the HTTP app failed to start (the log says why)") from None
