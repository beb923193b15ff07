"""`create_app(settings)`: the Starlette app, owning its pool for its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypedDict

from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.middleware import Middleware

from app import db, sampling, tracing
from app.flows import model
from app.jobs import NOTIFY_CHANNEL, Queue, queue_from
from app.settings import Settings
from app.signals import Listener, Publisher, Waker, Watchers
from app.web import api, console, errors
from app.web.access import AccessLog


class State(TypedDict):
    settings: Settings
    pool: AsyncConnectionPool[Any]
    queue: Queue
    run_watchers: Watchers
    run_events: Publisher
    cancel_events: Publisher


@contextlib.asynccontextmanager
async def _watched(pool: AsyncConnectionPool[Any]) -> AsyncIterator[None]:
    with sampling.watch_database("app", pool):
        yield


def create_app(
    settings: Settings,
    *,
    run_watchers: Watchers | None = None,
    wake_local_worker: Callable[[], bool] | None = None,
) -> Starlette:
    """The app for settings whose database URL is resolved (see `db.with_database_url`).

    `run_watchers` is shared with a worker in the same process (WORKER_AND_APP), which then
    hands sync callers their replies directly; NOTIFY still carries them across processes.
    `wake_local_worker` wakes that worker for a new job (when it has a free slot; else
    other workers are notified).
    """
    watchers = run_watchers if run_watchers is not None else Watchers()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[State]:
        tracing.setup(settings)
        # The pool opens without waiting, so the app starts (and /ready answers 503)
        # while the database is unreachable.
        async with db.create_pool(settings, name="sluice-app") as pool, _watched(pool):
            waker = Waker(pool, NOTIFY_CHANNEL, local=wake_local_worker)
            listener = Listener(db.direct_url(settings), [model.RUN_EVENTS_CHANNEL])
            listener.subscribe(model.RUN_EVENTS_CHANNEL, watchers.on_notify)
            listening = asyncio.create_task(listener.run(), name="run-events-listener")
            run_events = Publisher(pool, model.RUN_EVENTS_CHANNEL)
            cancel_events = Publisher(pool, model.CANCEL_CHANNEL)
            try:
                yield {
                    "settings": settings,
                    "pool": pool,
                    "queue": queue_from(settings, waker),
                    "run_watchers": watchers,
                    "run_events": run_events,
                    "cancel_events": cancel_events,
                }
            finally:
                listening.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listening
                for sender in (waker, run_events, cancel_events):
                    await sender.aclose()

    return Starlette(
        routes=[*api.routes(), *console.routes()],
        exception_handlers=errors.HANDLERS,
        lifespan=lifespan,
        middleware=[Middleware(AccessLog)] if settings.access_log else None,
    )
