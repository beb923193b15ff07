"""Project administration (admin key) and the caller's own project (project key)."""

from __future__ import annotations

from typing import Any

import pydantic
from starlette.requests import Request
from starlette.responses import JSONResponse

from app import projects, workers
from app.web import auth, schemas
from app.web.body import parse
from app.web.errors import ApiError
from app.web.schemas import reply

# The concurrency limit and project ids are PostgreSQL integers.
MAX_CONCURRENCY = 1_000_000
_MAX_ID = 2**31 - 1


class NewProject(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: str = pydantic.Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    concurrency_limit: int | None = pydantic.Field(default=None, ge=1, le=MAX_CONCURRENCY)


class NewApiKey(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: str | None = pydantic.Field(default=None, max_length=200)


class ProjectChange(pydantic.BaseModel):
    """The settings to change; those not given stay as they are."""

    model_config = pydantic.ConfigDict(extra="forbid")
    concurrency_limit: int | None = pydantic.Field(default=None, ge=1, le=MAX_CONCURRENCY)
    allow_network: pydantic.StrictBool | None = pydantic.Field(
        default=None, description="Whether the project's code steps may ask for network."
    )

    @pydantic.model_validator(mode="after")
    def _something(self) -> ProjectChange:
        if not self.model_fields_set:
            raise ValueError("give concurrency_limit, allow_network or both")
        if "allow_network" in self.model_fields_set and self.allow_network is None:
            raise ValueError("allow_network must be true or false")
        return self


def _path_id(request: Request) -> int:
    raw = request.path_params["project_id"]
    if not (raw.isascii() and raw.isdigit()) or int(raw) > _MAX_ID:
        raise ApiError(404, f"no project {raw!r}")
    return int(raw)


async def create_project(request: Request) -> JSONResponse:
    """Create a project and its first API key (shown only in this reply)."""
    auth.require_admin(request)
    body = await parse(request, NewProject)
    async with request.state.pool.connection() as conn, conn.transaction():
        try:
            project = await projects.create_project(conn, body.name, body.concurrency_limit)
        except projects.ProjectNameTaken as exc:
            raise ApiError(409, str(exc)) from None
        _record, key = await projects.create_api_key(conn, project.id, "first key")
    created = schemas.ProjectCreated(project=schemas.Project.model_validate(project), api_key=key)
    return reply(created, 201)


async def create_api_key(request: Request) -> JSONResponse:
    """Create another API key for a project (shown only in this reply)."""
    auth.require_admin(request)
    project_id = _path_id(request)
    body = await parse(request, NewApiKey)
    async with request.state.pool.connection() as conn:
        if await projects.get_project(conn, project_id) is None:
            raise ApiError(404, f"no project {project_id}")
        record, key = await projects.create_api_key(conn, project_id, body.name)
    created = schemas.ApiKeyCreated(
        api_key=key, prefix=record.prefix, project_id=project_id, name=record.name
    )
    return reply(created, 201)


async def change_project(request: Request) -> JSONResponse:
    """Change a project's concurrency limit (null: unlimited) or whether its code steps may
    have network; what is not given stays."""
    auth.require_admin(request)
    project_id = _path_id(request)
    body = await parse(request, ProjectChange)
    changes: dict[str, Any] = {"allow_network": body.allow_network}
    if "concurrency_limit" in body.model_fields_set:
        changes["concurrency_limit"] = body.concurrency_limit
    async with request.state.pool.connection() as conn:
        project = await projects.update_project(conn, project_id, **changes)
    if project is None:
        raise ApiError(404, f"no project {project_id}")
    return reply(schemas.Project.model_validate(project))


async def own_project(request: Request) -> JSONResponse:
    """The project the key belongs to."""
    project_id = await auth.project_id(request)
    async with request.state.pool.connection() as conn:
        project = await projects.get_project(conn, project_id)
    assert project is not None  # the key's project exists (keys cascade with it)
    return reply(schemas.Project.model_validate(project))


async def list_workers(request: Request) -> JSONResponse:
    """The worker registry (every project's work: the admin key's view)."""
    await auth.require_admin_view(request)
    async with request.state.pool.connection() as conn:
        found = await workers.recent(conn)
    return reply(schemas.WorkerList.model_validate({"workers": found}))
