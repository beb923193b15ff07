"""The HTTP API as one table: each operation's route, handler and documentation, in
sections by tag and by the key they need.

Invariant: `create_app` serves exactly these routes plus the console (``GET /``, which
redirects to it, and the ``/console`` mount of HTML pages, which are not API operations),
and ``GET /openapi.json`` documents exactly these operations, so an API route cannot exist
undocumented.
"""

from __future__ import annotations

import copy
import dataclasses
import functools

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app import metrics
from app.flows import run_views
from app.flows.model import RunStatus
from app.flows.run_views import RunSummary
from app.web import (
    approvals,
    flows,
    health,
    resumes,
    runs,
    schedules,
    schemas,
    timing,
    webhooks,
)
from app.web import metrics as web_metrics
from app.web._projects_api import ACROSS_PROJECTS, ADMINISTRATION, OWN_PROJECT
from app.web._replay_api import REPLAY
from app.web._resumes import (
    APPROVAL_PAGE_REPLIES,
    KEY_RESUME_BODY,
    KEY_RESUME_REPLIES,
    PAGE_RESUME_REPLIES,
)
from app.web._secrets_api import SECRETS
from app.web._shared import (
    HANDSHAKE,
    IDEMPOTENCY,
    NOT_FOUND,
    PATH_PARAMETERS,
    READ_BODY,
    RESUME_ERRORS,
    RUN_NOT_FOUND,
    SIGNATURE,
    SYNC_REPLIES,
    UNAVAILABLE,
    WEBHOOK_BODY,
    WEBHOOK_ERRORS,
)
from app.web._versions_api import VERSIONS
from app.web.openapi import (
    ADMIN_KEY,
    PROJECT_KEY,
    Json,
    Operation,
    Parameter,
    Reply,
    Section,
    build,
    error_reply,
    json_body,
    json_reply,
)

_RUN_QUERY = (
    Parameter("flow", "query", str, "Only runs of the flow with this name."),
    Parameter("status", "query", RunStatus, "Only runs with this status (any case)."),
    Parameter(
        "limit",
        "query",
        {
            "type": "integer",
            "minimum": 1,
            "maximum": run_views.MAX_PAGE,
            "default": run_views.DEFAULT_PAGE,
        },
        "Runs per page.",
    ),
    Parameter("cursor", "query", str, "The `next_cursor` of the previous page."),
)


async def openapi(_request: Request) -> JSONResponse:
    """This document."""
    return JSONResponse(_document())


_PROBES = (
    Operation("GET /health", health.health, {"200": json_reply("Serving.", schemas.Health)}),
    Operation(
        "GET /ready",
        health.ready,
        {
            "200": json_reply("Ready.", schemas.Ready),
            "503": json_reply("Not ready.", schemas.NotReady),
        },
    ),
    Operation(
        "GET /metrics",
        web_metrics.metrics_text,
        {
            "200": Reply(
                "This process's metrics, with run and queue gauges.",
                {metrics.CONTENT_TYPE.split(";")[0]: str},
            ),
            "401": error_reply(
                "SLUICE_METRICS_TOKEN is set and the request lacks "
                "`Authorization: Bearer <SLUICE_METRICS_TOKEN>`."
            ),
        },
        id="metrics",
        summary="Metrics in the Prometheus text format.",
    ),
    Operation(
        "GET /openapi.json",
        openapi,
        {"200": json_reply("The OpenAPI 3.1 document.", {"type": "object"})},
    ),
)
_FLOW_SCHEMA = (
    Operation(
        "GET /api/v1/flow-schema",
        flows.flow_schema,
        {"200": json_reply("JSON Schema, draft 2020-12.", {"type": "object"})},
    ),
)
_FLOWS = (
    Operation(
        "GET /api/v1/flows", flows.list_flows, {"200": json_reply("The flows.", schemas.FlowList)}
    ),
    Operation(
        "PUT /api/v1/flows/{name}",
        flows.deploy_flow,
        {
            "200": json_reply("Identical to the latest version.", schemas.FlowDeployed),
            "201": json_reply("A new version.", schemas.FlowDeployed),
            "422": error_reply("An invalid definition; each problem with its path."),
            **READ_BODY,
        },
        body=json_body({"$ref": "#/components/schemas/FlowDeployment"}),
    ),
    Operation(
        "GET /api/v1/flows/{name}",
        flows.show_flow,
        {
            "200": json_reply("The flow.", schemas.Flow),
            "422": error_reply("`defaults` is neither `true` nor `false`."),
            **NOT_FOUND,
        },
        parameters=(
            Parameter(
                "defaults",
                "query",
                {"type": "boolean", "default": True},
                "`false`: the definition without the fields that hold their default value.",
            ),
        ),
    ),
    Operation(
        "DELETE /api/v1/flows/{name}", flows.delete_flow, {"204": Reply("Deleted."), **NOT_FOUND}
    ),
    Operation(
        "POST /api/v1/flows/{name}/enable",
        flows.enable_flow,
        {"200": json_reply("The flow's new state.", schemas.FlowEnabled), **NOT_FOUND},
    ),
    Operation(
        "POST /api/v1/flows/{name}/disable",
        flows.disable_flow,
        {"200": json_reply("The flow's new state.", schemas.FlowEnabled), **NOT_FOUND},
    ),
)
_SCHEDULES = (
    Operation(
        "GET /api/v1/schedules",
        schedules.list_schedules,
        {"200": json_reply("Every schedule of the project's flows.", schemas.ScheduleList)},
    ),
)
_RUNS = (
    Operation(
        "GET /api/v1/runs",
        runs.list_runs,
        {
            "200": json_reply("The runs, and the next page's cursor (or null).", schemas.RunList),
            "422": error_reply("An invalid query parameter; see `problems`."),
        },
        parameters=_RUN_QUERY,
    ),
    Operation(
        "GET /api/v1/runs/{run_id}",
        runs.show_run,
        {"200": json_reply("The run, with what it waits for.", schemas.RunDetail), **RUN_NOT_FOUND},
    ),
    Operation(
        "POST /api/v1/runs/{run_id}/cancel",
        runs.cancel_run,
        {
            "200": json_reply("The canceled run.", RunSummary),
            "409": error_reply("The run has ended already."),
            **RUN_NOT_FOUND,
        },
    ),
    Operation(
        "POST /api/v1/runs/{run_id}/steps/{step_id}/resume",
        resumes.resume_step,
        KEY_RESUME_REPLIES,
        body=KEY_RESUME_BODY,
    ),
)
_WEBHOOKS = (
    *(
        operation
        for path, start, start_sync in (
            ("/webhooks/{flow_id}", webhooks.trigger_flow, webhooks.trigger_flow_sync),
            (
                "/webhooks/{project}/{flow}",
                webhooks.trigger_named_flow,
                webhooks.trigger_named_flow_sync,
            ),
        )
        for operation in (
            Operation(
                f"POST {path}",
                start,
                {
                    "202": json_reply(
                        "Accepted: the run is committed.", schemas.RunAccepted, run_header=True
                    ),
                    **HANDSHAKE,
                    **WEBHOOK_ERRORS,
                },
                body=WEBHOOK_BODY,
                parameters=(SIGNATURE, IDEMPOTENCY),
            ),
            Operation(
                f"POST {path}/sync",
                start_sync,
                {**SYNC_REPLIES, **WEBHOOK_ERRORS},
                body=WEBHOOK_BODY,
                parameters=(SIGNATURE, IDEMPOTENCY),
            ),
        )
    ),
    Operation(
        "GET /resume/{run_id}/{token}",
        approvals.approval_page,
        APPROVAL_PAGE_REPLIES,
    ),
    Operation(
        "POST /resume/{run_id}/{token}",
        webhooks.resume_run,
        PAGE_RESUME_REPLIES,
        body=WEBHOOK_BODY,
    ),
    Operation(
        "POST /resume/{run_id}/{token}/sync",
        webhooks.resume_run_sync,
        {**SYNC_REPLIES, **RESUME_ERRORS},
        body=WEBHOOK_BODY,
    ),
)


def _database(operations: tuple[Operation, ...]) -> tuple[Operation, ...]:
    """`operations`, which need the database: each may answer 503 while it is away."""
    return tuple(
        dataclasses.replace(operation, replies={**operation.replies, **UNAVAILABLE})
        for operation in operations
    )


_NO_DATABASE = ("GET /health", "GET /ready", "GET /openapi.json")
SECTIONS = (
    Section("probes", None, tuple(o for o in _PROBES if o.route in _NO_DATABASE)),
    Section("probes", None, _database(tuple(o for o in _PROBES if o.route not in _NO_DATABASE))),
    Section("projects", ADMIN_KEY, _database(ADMINISTRATION)),
    Section("projects", ADMIN_KEY, _database(ACROSS_PROJECTS)),
    Section("projects", PROJECT_KEY, _database(OWN_PROJECT)),
    Section("flows", None, _FLOW_SCHEMA),
    Section("flows", PROJECT_KEY, _database(_FLOWS)),
    Section("flows", PROJECT_KEY, _database(_SCHEDULES)),
    Section("flows", PROJECT_KEY, _database(VERSIONS)),
    Section("secrets", PROJECT_KEY, _database(SECRETS)),
    Section("runs", PROJECT_KEY, _database(_RUNS)),
    Section("runs", PROJECT_KEY, _database(REPLAY)),
    Section("webhooks", None, _database(_WEBHOOKS)),
)


def routes() -> list[Route]:
    return [
        _route(operation, timed=section.tag == "webhooks" and operation.method == "POST")
        for section in SECTIONS
        for operation in section.operations
    ]


def _route(operation: Operation, *, timed: bool) -> Route:
    route = Route(operation.path, operation.endpoint, methods=[operation.method])
    if timed:  # the webhook latency histogram, by route template
        route.app = timing.timed(route.app, operation.method, operation.path)
    return route


@functools.cache
def _document() -> Json:
    return build(SECTIONS, PATH_PARAMETERS)


def document() -> Json:
    """The OpenAPI document (a fresh copy: callers may change it)."""
    return copy.deepcopy(_document())
