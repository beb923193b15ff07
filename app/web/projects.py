"""Project administration (admin key) and the caller's own project (project key)."""

from __future__ import annotations

from typing import Any

import pydantic
from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import JSONResponse

from app import projects, workers
from app.flows.definition import FlowName
from app.web import auth, schemas
from app.web.body import parse
from app.web.errors import ApiError
from app.web.schemas import Problem, reply

# The concurrency limit is a PostgreSQL integer.
MAX_CONCURRENCY = 1_000_000
MAX_PAGE = 200
"""The most projects, or keys, one answer lists."""


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
    on_failure_flow: FlowName | None = pydantic.Field(
        default=None,
        description="The flow a failed run starts when its own flow names no `on_failure` "
        "(null: none).",
    )

    @pydantic.model_validator(mode="after")
    def _something(self) -> ProjectChange:
        if not self.model_fields_set:
            raise ValueError("give concurrency_limit, allow_network or on_failure_flow")
        if "allow_network" in self.model_fields_set and self.allow_network is None:
            raise ValueError("allow_network must be true or false")
        return self


async def _path_project(request: Request, conn: AsyncConnection[Any]) -> projects.Project:
    """The project the path's ``{project_id}`` names: its id or its name (404 otherwise)."""
    raw = request.path_params["project_id"]
    found = await projects.find_project(conn, raw)
    if found is None:
        raise ApiError(404, f"no project {raw!r}")
    return found


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", str(MAX_PAGE))
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE:
        problems = [Problem(path="limit", message=f"must be 1 to {MAX_PAGE}")]
        raise ApiError(422, "invalid query", problems=problems)
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
    body = await parse(request, NewApiKey)
    async with request.state.pool.connection() as conn:
        project = await _path_project(request, conn)
        record, key = await projects.create_api_key(conn, project.id, body.name)
    created = schemas.ApiKeyCreated(
        api_key=key, prefix=record.prefix, project_id=project.id, name=record.name
    )
    return reply(created, 201)


async def change_project(request: Request) -> JSONResponse:
    """Change a project's concurrency limit (null: unlimited) or whether its code steps may
    have network; what is not given stays."""
    auth.require_admin(request)
    body = await parse(request, ProjectChange)
    changes: dict[str, Any] = {"allow_network": body.allow_network}
    if "concurrency_limit" in body.model_fields_set:
        changes["concurrency_limit"] = body.concurrency_limit
    if "on_failure_flow" in body.model_fields_set:
        changes["on_failure_flow"] = body.on_failure_flow
    async with request.state.pool.connection() as conn:
        named = await _path_project(request, conn)
        project = await projects.update_project(conn, named.id, **changes)
    if project is None:  # deleted in between
        raise ApiError(404, f"no project {named.id}")
    return reply(schemas.Project.model_validate(project))


async def list_projects(request: Request) -> JSONResponse:
    """A page of the projects, by id."""
    auth.require_admin(request)
    limit = _limit(request)
    cursor = request.query_params.get("cursor", "0")
    if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 18):
        problems = [Problem(path="cursor", message="a next_cursor this route answered")]
        raise ApiError(422, "invalid query", problems=problems)
    async with request.state.pool.connection() as conn:
        found = await projects.list_projects(conn, after=int(cursor), limit=limit + 1)
    following = str(found[limit - 1].id) if len(found) > limit else None
    listed = [schemas.Project.model_validate(each) for each in found[:limit]]
    return reply(schemas.ProjectList(projects=listed, next_cursor=following))


async def list_api_keys(request: Request) -> JSONResponse:
    """A project's newest keys, revoked ones included (never a secret)."""
    auth.require_admin(request)
    limit = _limit(request)
    async with request.state.pool.connection() as conn:
        project = await _path_project(request, conn)
        found = await projects.list_api_keys(conn, project.id, limit)
    keys = [schemas.ApiKey.model_validate(each) for each in found]
    return reply(schemas.ApiKeyList(api_keys=keys))


async def revoke_api_key(request: Request) -> JSONResponse:
    """Revoke a key by its prefix: it is refused from this answer on (revoking a revoked key
    again changes nothing)."""
    auth.require_admin(request)
    prefix = request.path_params["prefix"]
    async with request.state.pool.connection() as conn:
        revoked = await projects.revoke_api_key(conn, prefix)
    if revoked is None:
        raise ApiError(404, f"no API key with prefix {prefix!r}")
    return reply(schemas.ApiKey.model_validate(revoked))


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
