"""`create_app(settings)`: the Starlette app, owning its pool for its lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, TypedDict

from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.routing import Route

from app import db
from app.settings import Settings
from app.web import errors, flows, health, projects


class State(TypedDict):
    settings: Settings
    pool: AsyncConnectionPool[Any]


def create_app(settings: Settings) -> Starlette:
    """The app for settings whose database URL is resolved (see `db.with_database_url`)."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[State]:
        # The pool opens without waiting, so the app starts (and /ready answers 503)
        # while the database is unreachable.
        async with db.create_pool(settings, name="sluice-app") as pool:
            yield {"settings": settings, "pool": pool}

    return Starlette(
        routes=[
            Route("/health", health.health, methods=["GET"]),
            Route("/ready", health.ready, methods=["GET"]),
            Route("/api/v1/projects", projects.create_project, methods=["POST"]),
            Route(
                "/api/v1/projects/{project_id}/api-keys",
                projects.create_api_key,
                methods=["POST"],
            ),
            Route("/api/v1/projects/{project_id}", projects.change_project, methods=["PATCH"]),
            Route("/api/v1/project", projects.own_project, methods=["GET"]),
            Route("/api/v1/workers", projects.list_workers, methods=["GET"]),
            Route("/api/v1/flow-schema", flows.schema, methods=["GET"]),
            Route("/api/v1/flows", flows.list_flows, methods=["GET"]),
            Route("/api/v1/flows/{name}", flows.deploy, methods=["PUT"]),
            Route("/api/v1/flows/{name}", flows.show, methods=["GET"]),
            Route("/api/v1/flows/{name}", flows.delete, methods=["DELETE"]),
            Route("/api/v1/flows/{name}/enable", flows.enable, methods=["POST"]),
            Route("/api/v1/flows/{name}/disable", flows.disable, methods=["POST"]),
        ],
        exception_handlers=errors.HANDLERS,
        lifespan=lifespan,
    )
