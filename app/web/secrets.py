"""Secrets (write-only) and vars (readable) of the caller's project.

A secret's value goes in with ``PUT`` and never comes out: every answer names it and its
times only. Another project's secrets and vars are indistinguishable from missing ones.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import pydantic
from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.flows import parse_flow
from app.secrets import keys, masking, references, store
from app.web import auth, schemas
from app.web.body import parse
from app.web.errors import ApiError
from app.web.schemas import reply

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
MAX_VALUE_CHARS = 64 * 1024


class SecretValue(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    value: str = pydantic.Field(min_length=masking.MIN_MASKED, max_length=MAX_VALUE_CHARS)


class VarValue(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    value: str = pydantic.Field(max_length=MAX_VALUE_CHARS)


def _name(request: Request) -> str:
    name: str = request.path_params["name"]
    if not NAME.fullmatch(name):
        raise ApiError(
            422, f"{name!r} is not a name: letters, digits and _, not starting with a digit"
        )
    return name


def _keyring(request: Request) -> keys.Keyring:
    try:
        return keys.keyring(request.state.settings)
    except keys.SecretsUnavailable as exc:
        raise ApiError(503, str(exc)) from None


async def put_secret(request: Request) -> JSONResponse:
    """Set a secret's value (encrypted at rest; never answered back)."""
    project_id = await auth.project_id(request)
    name = _name(request)
    body = await parse(request, SecretValue)
    ring = _keyring(request)
    async with request.state.pool.connection() as conn:
        put = await store.put_secret(conn, ring, project_id, name, body.value)
    view = schemas.Secret.model_validate(put.row, from_attributes=True)
    return reply(view, 201 if put.created else 200)


async def list_secrets(request: Request) -> JSONResponse:
    """The project's secrets: names, times, and the flows that use each."""
    project_id = await auth.project_id(request)
    async with request.state.pool.connection() as conn:
        found = await store.list_secrets(conn, project_id)
        definitions = await store.flow_definitions(conn, project_id)
    users: dict[str, list[str]] = {}
    for flow, definition in definitions:
        for name in references.of(parse_flow(definition)).secrets:
            users.setdefault(name, []).append(flow)
    views = [
        schemas.Secret(
            name=s.name,
            created_at=s.created_at,
            updated_at=s.updated_at,
            used_by=users.get(s.name, []),
        )
        for s in found
    ]
    return reply(schemas.SecretList(secrets=views))


async def delete_secret(request: Request) -> Response:
    """Remove a secret (runs that use it fail from then on)."""
    return await _delete(request, "secret", store.delete_secret)


async def put_var(request: Request) -> JSONResponse:
    """Set a var's value."""
    project_id = await auth.project_id(request)
    name = _name(request)
    body = await parse(request, VarValue)
    async with request.state.pool.connection() as conn:
        put = await store.put_var(conn, project_id, name, body.value)
    return reply(
        schemas.Var.model_validate(put.row, from_attributes=True), 201 if put.created else 200
    )


async def list_vars(request: Request) -> JSONResponse:
    """The project's vars with their values."""
    project_id = await auth.project_id(request)
    async with request.state.pool.connection() as conn:
        found = await store.list_vars(conn, project_id)
    views = [schemas.Var.model_validate(var, from_attributes=True) for var in found]
    return reply(schemas.VarList(vars=views))


async def get_var(request: Request) -> JSONResponse:
    """One var."""
    project_id = await auth.project_id(request)
    name = _name(request)
    async with request.state.pool.connection() as conn:
        var = await store.get_var(conn, project_id, name)
    if var is None:
        raise ApiError(404, f"no var {name!r}")
    return reply(schemas.Var.model_validate(var, from_attributes=True))


async def delete_var(request: Request) -> Response:
    """Remove a var."""
    return await _delete(request, "var", store.delete_var)


async def _delete(
    request: Request,
    kind: str,
    delete: Callable[[AsyncConnection[Any], int, str], Awaitable[bool]],
) -> Response:
    project_id = await auth.project_id(request)
    name = _name(request)
    async with request.state.pool.connection() as conn:
        if not await delete(conn, project_id, name):
            raise ApiError(404, f"no {kind} {name!r}")
    return Response(status_code=204)
