"""The HTTP API as one table: each operation's route, handler and documentation.

Invariant: `create_app` serves exactly these routes, and ``GET /openapi.json`` documents
exactly these operations, so a route cannot exist undocumented.
"""

from __future__ import annotations

import copy
import functools

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app import metrics
from app.flows import run_views
from app.flows.model import RunStatus
from app.flows.run_views import Run, RunSummary
from app.web import flows, health, projects, runs, schemas, webhooks
from app.web import metrics as web_metrics
from app.web._shared import (
    NOT_FOUND,
    PATH_PARAMETERS,
    READ_BODY,
    RESUME_ERRORS,
    SIGNATURE,
    SYNC_REPLIES,
    VALIDATED_BODY,
    WEBHOOK_BODY,
    WEBHOOK_ERRORS,
)
from app.web.openapi import (
    ADMIN_KEY,
    PROJECT_KEY,
    Json,
    Operation,
    Parameter,
    Reply,
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


async def _openapi(_request: Request) -> JSONResponse:
    return JSONResponse(_document())


OPERATIONS = (
    Operation(
        "GET /health",
        health.health,
        "health",
        "probes",
        "Liveness: the process serves HTTP.",
        {"200": json_reply("Serving.", schemas.Health)},
    ),
    Operation(
        "GET /ready",
        health.ready,
        "ready",
        "probes",
        "Readiness: the database answers and its schema is at head.",
        {
            "200": json_reply("Ready.", schemas.Ready),
            "503": json_reply("Not ready.", schemas.NotReady),
        },
    ),
    Operation(
        "POST /api/v1/projects",
        projects.create_project,
        "createProject",
        "projects",
        "Create a project and its first API key (shown only in this reply).",
        {
            "201": json_reply("Created.", schemas.ProjectCreated),
            "409": error_reply("The name is taken."),
            **VALIDATED_BODY,
        },
        key=ADMIN_KEY,
        body=json_body(projects.NewProject),
    ),
    Operation(
        "POST /api/v1/projects/{project_id}/api-keys",
        projects.create_api_key,
        "createApiKey",
        "projects",
        "Create another API key for a project (shown only in this reply).",
        {"201": json_reply("Created.", schemas.ApiKeyCreated), **NOT_FOUND, **VALIDATED_BODY},
        key=ADMIN_KEY,
        body=json_body(projects.NewApiKey),
    ),
    Operation(
        "PATCH /api/v1/projects/{project_id}",
        projects.change_project,
        "changeProject",
        "projects",
        "Set a project's concurrency limit (null: unlimited).",
        {"200": json_reply("The project.", schemas.Project), **NOT_FOUND, **VALIDATED_BODY},
        key=ADMIN_KEY,
        body=json_body(projects.ProjectChange),
    ),
    Operation(
        "GET /api/v1/project",
        projects.own_project,
        "ownProject",
        "projects",
        "The project the key belongs to.",
        {"200": json_reply("The project.", schemas.Project)},
        key=PROJECT_KEY,
    ),
    Operation(
        "GET /api/v1/workers",
        projects.list_workers,
        "listWorkers",
        "projects",
        "The worker registry.",
        {"200": json_reply("Recently seen workers.", schemas.WorkerList)},
        key=PROJECT_KEY,
    ),
    Operation(
        "GET /api/v1/flow-schema",
        flows.schema,
        "flowSchema",
        "flows",
        "The JSON Schema of flow definitions.",
        {"200": json_reply("JSON Schema, draft 2020-12.", {"type": "object"})},
    ),
    Operation(
        "GET /api/v1/flows",
        flows.list_flows,
        "listFlows",
        "flows",
        "The project's flows.",
        {"200": json_reply("The flows.", schemas.FlowList)},
        key=PROJECT_KEY,
    ),
    Operation(
        "PUT /api/v1/flows/{name}",
        flows.deploy,
        "deployFlow",
        "flows",
        "Add an immutable version (an identical definition adds nothing).",
        {
            "200": json_reply("Identical to the latest version.", schemas.FlowDeployed),
            "201": json_reply("A new version.", schemas.FlowDeployed),
            "422": error_reply("An invalid definition; each problem with its path."),
            **READ_BODY,
        },
        key=PROJECT_KEY,
        body=json_body({"$ref": "#/components/schemas/FlowDeployment"}),
    ),
    Operation(
        "GET /api/v1/flows/{name}",
        flows.show,
        "showFlow",
        "flows",
        "A flow with its latest version's definition.",
        {"200": json_reply("The flow.", schemas.Flow), **NOT_FOUND},
        key=PROJECT_KEY,
    ),
    Operation(
        "DELETE /api/v1/flows/{name}",
        flows.delete,
        "deleteFlow",
        "flows",
        "Hide a flow (its versions are kept; the name can be reused).",
        {"204": Reply("Deleted."), **NOT_FOUND},
        key=PROJECT_KEY,
    ),
    *(
        Operation(
            f"POST /api/v1/flows/{{name}}/{word}",
            endpoint,
            f"{word}Flow",
            "flows",
            f"Switch a flow {state}.",
            {"200": json_reply("The flow's new state.", schemas.FlowEnabled), **NOT_FOUND},
            key=PROJECT_KEY,
        )
        for word, state, endpoint in (
            ("enable", "on", flows.enable),
            ("disable", "off", flows.disable),
        )
    ),
    Operation(
        "GET /api/v1/runs",
        runs.list_runs,
        "listRuns",
        "runs",
        "A page of the project's runs, newest first.",
        {
            "200": json_reply("The runs, and the next page's cursor (or null).", schemas.RunList),
            "422": error_reply("An invalid query parameter; see `problems`."),
        },
        key=PROJECT_KEY,
        parameters=_RUN_QUERY,
    ),
    Operation(
        "GET /api/v1/runs/{run_id}",
        runs.show,
        "showRun",
        "runs",
        "A run with its trigger, output, reply, steps and child runs.",
        {"200": json_reply("The run.", Run), **NOT_FOUND},
        key=PROJECT_KEY,
    ),
    Operation(
        "POST /api/v1/runs/{run_id}/cancel",
        runs.cancel,
        "cancelRun",
        "runs",
        "Cancel a run that has not ended, and its child runs.",
        {
            "200": json_reply("The canceled run.", RunSummary),
            "409": error_reply("The run has ended already."),
            **NOT_FOUND,
        },
        key=PROJECT_KEY,
    ),
    Operation(
        "POST /api/v1/runs/{run_id}/retry",
        runs.retry,
        "retryRun",
        "runs",
        "Queue a run that ended unsuccessfully again, from its first unfinished step.",
        {
            "202": json_reply("The run, queued again.", RunSummary),
            "409": error_reply("The run has not ended, or it succeeded."),
            **NOT_FOUND,
        },
        key=PROJECT_KEY,
    ),
    Operation(
        "POST /webhooks/{flow_id}",
        webhooks.webhook,
        "triggerFlow",
        "webhooks",
        "Start a run of the flow.",
        {
            "202": json_reply(
                "Accepted: the run is committed.", schemas.RunAccepted, run_header=True
            ),
            **WEBHOOK_ERRORS,
        },
        body=WEBHOOK_BODY,
        parameters=(SIGNATURE,),
    ),
    Operation(
        "POST /webhooks/{flow_id}/sync",
        webhooks.webhook_sync,
        "triggerFlowSync",
        "webhooks",
        "Start a run and wait for its reply.",
        {**SYNC_REPLIES, **WEBHOOK_ERRORS},
        body=WEBHOOK_BODY,
        parameters=(SIGNATURE,),
    ),
    Operation(
        "POST /resume/{run_id}/{token}",
        webhooks.resume_run,
        "resumeRun",
        "webhooks",
        "Continue a run waiting in a `wait_for_webhook` step; the body is its output.",
        {"202": json_reply("Resumed.", schemas.Resumed, run_header=True), **RESUME_ERRORS},
        body=WEBHOOK_BODY,
    ),
    Operation(
        "POST /resume/{run_id}/{token}/sync",
        webhooks.resume_run_sync,
        "resumeRunSync",
        "webhooks",
        "Continue a waiting run and wait for its next reply.",
        {**SYNC_REPLIES, **RESUME_ERRORS},
        body=WEBHOOK_BODY,
    ),
    Operation(
        "GET /metrics",
        web_metrics.metrics_text,
        "metrics",
        "probes",
        "Metrics in the Prometheus text format.",
        {
            "200": Reply(
                "This process's metrics, with run and queue gauges.",
                {metrics.CONTENT_TYPE.split(";")[0]: str},
            )
        },
    ),
    Operation(
        "GET /openapi.json",
        _openapi,
        "openapi",
        "probes",
        "This document.",
        {"200": json_reply("The OpenAPI 3.1 document.", {"type": "object"})},
    ),
)


def routes() -> list[Route]:
    return [Route(op.path, op.endpoint, methods=[op.method]) for op in OPERATIONS]


@functools.cache
def _document() -> Json:
    return build(OPERATIONS, PATH_PARAMETERS)


def document() -> Json:
    """The OpenAPI document (a fresh copy: callers may change it)."""
    return copy.deepcopy(_document())
