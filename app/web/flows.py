"""Flows over HTTP: deploy versions, list, show, enable/disable, delete; the JSON Schema.

All routes but the schema act within the project of the caller's API key: another project's
flows are indistinguishable from missing ones (404).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar
from uuid import UUID

from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app import projects
from app.flows import FlowDefinitionError, flow_json_schema, parse_flow, store
from app.flows.definition import CallFlowStep
from app.flows.triggers import ScheduleTrigger
from app.schedules import firing
from app.secrets import references
from app.secrets import store as secrets_store
from app.web import auth, schedules, schemas
from app.web.body import json_body
from app.web.errors import ApiError
from app.web.schemas import FlowEnabled, Problem, reply

_View = TypeVar("_View", bound=schemas.FlowSummary)


async def flow_schema(_request: Request) -> JSONResponse:
    """The JSON Schema of flow definitions."""
    return JSONResponse(flow_json_schema())


def _webhook_url(request: Request, flow_id: UUID) -> str:
    return str(request.base_url).rstrip("/") + f"/webhooks/{flow_id}"


def _stable_url(request: Request, project: str, flow: str) -> str:
    """The URL that stays a flow's across redeploys, deletes and recreations."""
    return str(request.base_url).rstrip("/") + f"/webhooks/{project}/{flow}"


async def _project_name(conn: AsyncConnection[Any], project_id: int) -> str:
    project = await projects.get_project(conn, project_id)
    assert project is not None  # the key's project exists (keys cascade with it)
    return project.name


def _view(
    view: type[_View], request: Request, project: str, flow: store.FlowSummary | store.FlowDetail
) -> _View:
    return view.model_validate(
        {
            **dataclasses.asdict(flow),
            "webhook_url": _webhook_url(request, flow.id),
            "stable_webhook_url": _stable_url(request, project, flow.name),
        }
    )


async def deploy_flow(request: Request) -> JSONResponse:
    """Add an immutable version and make it live (a definition identical to the live
    version adds nothing)."""
    project_id = await auth.project_id(request)
    name = request.path_params["name"]
    document = await json_body(request)
    if isinstance(document, dict):
        document.setdefault("name", name)
        if document["name"] != name:
            raise ApiError(
                422,
                f"the name in the body ({document['name']!r}) differs from the URL's ({name!r})",
            )
    try:
        definition = parse_flow(document)
    except FlowDefinitionError as exc:
        problems = [Problem(path=p["path"], message=p["message"]) for p in exc.problems]
        raise ApiError(422, "invalid flow definition", problems=problems) from None
    calls = [
        (f"{path}.flow", step.flow)
        for path, step in definition.iter_steps()
        if isinstance(step, CallFlowStep) and step.flow != name
    ]
    if definition.on_failure is not None and definition.on_failure != name:
        calls.append(("on_failure", definition.on_failure))
    named = references.of(definition)
    async with request.state.pool.connection() as conn:
        if named.secrets or named.vars:
            await _check_named(conn, project_id, named)
        by = projects.key_prefix(auth.bearer(request))
        deployed = await store.deploy(conn, project_id, definition, created_by=by)
        live = await store.live_names(conn, project_id, (flow for _, flow in calls))
        project = await _project_name(conn, project_id)
    warnings = [
        Problem(
            path=path,
            message=f"no flow {flow!r} in this project (yet): the call fails until one is deployed",
        )
        for path, flow in calls
        if flow not in live
    ]
    view = schemas.FlowDeployed(
        id=deployed.flow_id,
        name=name,
        version=deployed.version,
        created=deployed.created,
        webhook_url=_webhook_url(request, deployed.flow_id),
        stable_webhook_url=_stable_url(request, project, name),
        warnings=warnings,
    )
    return reply(view, 201 if deployed.created else 200)


async def _check_named(
    conn: AsyncConnection[Any], project_id: int, named: references.References
) -> None:
    """Refuse a definition naming secrets or vars the project does not have."""
    secrets, variables = await secrets_store.missing(conn, project_id, named.secrets, named.vars)
    if secrets or variables:
        problems = [
            Problem(path=f"secrets.{name}", message=f"no secret {name!r} in this project")
            for name in secrets
        ] + [
            Problem(path=f"vars.{name}", message=f"no var {name!r} in this project")
            for name in variables
        ]
        raise ApiError(
            422, "the flow names secrets or vars the project does not have", problems=problems
        )


async def list_flows(request: Request) -> JSONResponse:
    """The project's flows."""
    project_id = await auth.project_id(request)
    async with request.state.pool.connection() as conn:
        flows = await store.list_flows(conn, project_id)
        project = await _project_name(conn, project_id)
    summaries = [_view(schemas.FlowSummary, request, project, flow) for flow in flows]
    return reply(schemas.FlowList(flows=summaries))


async def show_flow(request: Request) -> JSONResponse:
    """A flow with its latest version's definition (``?defaults=false``: without the fields
    that hold their default value, close to what was written)."""
    project_id = await auth.project_id(request)
    name = request.path_params["name"]
    defaults = request.query_params.get("defaults", "true")
    if defaults not in ("true", "false"):
        problems = [Problem(path="defaults", message="true or false")]
        raise ApiError(422, "invalid query", problems=problems)
    async with request.state.pool.connection() as conn:
        flow = await store.get(conn, project_id, name)
        project = await _project_name(conn, project_id)
        if flow is None:
            raise ApiError(404, f"no flow {name!r}")
        parsed = parse_flow(flow.definition)
        triggers = parsed.triggers
        scheduled = await firing.of_flow(
            conn,
            flow.id,
            ((i, t) for i, t in enumerate(triggers) if isinstance(t, ScheduleTrigger)),
        )
    views = [schedules.view(*s, enabled=flow.enabled) for s in scheduled]
    return reply(
        schemas.Flow.model_validate(
            {
                **dataclasses.asdict(flow),
                **(
                    {}
                    if defaults == "true"
                    else {
                        "definition": parsed.model_dump(
                            mode="json", by_alias=True, exclude_defaults=True
                        )
                    }
                ),
                "webhook_url": _webhook_url(request, flow.id),
                "stable_webhook_url": _stable_url(request, project, flow.name),
                "schedules": views,
            }
        )
    )


async def enable_flow(request: Request) -> JSONResponse:
    """Switch a flow on."""
    return await _set_enabled(request, True)


async def disable_flow(request: Request) -> JSONResponse:
    """Switch a flow off."""
    return await _set_enabled(request, False)


async def _set_enabled(request: Request, enabled: bool) -> JSONResponse:
    project_id = await auth.project_id(request)
    name = request.path_params["name"]
    async with request.state.pool.connection() as conn:
        if not await store.set_enabled(conn, project_id, name, enabled):
            raise ApiError(404, f"no flow {name!r}")
    return JSONResponse(FlowEnabled(name=name, enabled=enabled))


async def delete_flow(request: Request) -> Response:
    """Hide a flow (its versions are kept; the name can be reused)."""
    project_id = await auth.project_id(request)
    name = request.path_params["name"]
    async with request.state.pool.connection() as conn:
        if not await store.delete(conn, project_id, name):
            raise ApiError(404, f"no flow {name!r}")
    return Response(status_code=204)
