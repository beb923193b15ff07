"""A flow's versions over HTTP: the list, one version's definition, a rollback."""

from __future__ import annotations

import pydantic
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.flows import versions
from app.web import auth, flows, schemas
from app.web.body import parse
from app.web.errors import ApiError
from app.web.schemas import Problem, reply

MAX_PAGE = 200


class Rollback(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    version: pydantic.StrictInt = pydantic.Field(ge=1, le=versions.MAX_VERSION)


def _number(raw: str) -> int | None:
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= versions.MAX_VERSION:
        return None
    return int(raw)


def _query_int(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name, str(default))
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= high:
        problems = [Problem(path=name, message=f"a whole number from 1 to {high}")]
        raise ApiError(422, "invalid query", problems=problems)
    return int(raw)


async def list_versions(request: Request) -> JSONResponse:
    """The flow's versions, newest first: who deployed each, its hash, which one is live."""
    project_id = await auth.project_id(request)
    name = request.path_params["name"]
    limit = _query_int(request, "limit", 50, MAX_PAGE)
    before = _query_int(request, "cursor", versions.MAX_VERSION, versions.MAX_VERSION)
    async with request.state.pool.connection() as conn:
        found = await versions.list_versions(conn, project_id, name, before=before, limit=limit + 1)
    if not found and before == versions.MAX_VERSION:
        raise ApiError(404, f"no flow {name!r}")
    following = str(found[limit - 1].version) if len(found) > limit else None
    listed = [schemas.FlowVersion.model_validate(each) for each in found[:limit]]
    return reply(schemas.FlowVersionList(versions=listed, next_cursor=following))


async def show_version(request: Request) -> JSONResponse:
    """One version with its definition as deployed."""
    project_id = await auth.project_id(request)
    name = request.path_params["name"]
    raw = request.path_params["version"]
    number = _number(raw)
    found = None
    if number is not None:
        async with request.state.pool.connection() as conn:
            found = await versions.get_version(conn, project_id, name, number)
    if found is None:
        raise ApiError(404, f"no version {raw!r} of flow {name!r}")
    return reply(schemas.FlowVersionDetail.model_validate(found))


async def roll_back(request: Request) -> JSONResponse:
    """Make an earlier (or any) version the one new runs start with; history stays."""
    project_id = await auth.project_id(request)
    name = request.path_params["name"]
    body = await parse(request, Rollback)
    async with request.state.pool.connection() as conn:
        done = await versions.roll_back(conn, project_id, name, body.version)
    if not done:
        raise ApiError(404, f"no version {body.version} of flow {name!r}")
    return await flows.show_flow(request)
