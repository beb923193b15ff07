"""``GET /openapi.json``: the OpenAPI 3.1 description of the whole HTTP API.

Invariant: every route of `create_app` is documented here with each of its methods, and
every ``$ref`` resolves within the document (tests/web/test_openapi.py fails otherwise).
The flow definition schema is the one `flow_json_schema()` publishes, its ``$defs`` moved
into ``components/schemas``.
"""

from __future__ import annotations

import copy
import functools
from importlib import metadata
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from app import metrics
from app.flows import flow_json_schema, run_views
from app.flows.model import RunStatus, StepStatus
from app.web.webhooks import SIGNATURE_HEADER

Json = dict[str, Any]

VERSION = "3.1.0"
_SCHEMAS = "#/components/schemas/"
_RUN_ID_HEADER = "x-sluice-run-id"


async def openapi(_request: Request) -> JSONResponse:
    return JSONResponse(_cached())


@functools.cache
def _cached() -> Json:
    return {
        "openapi": VERSION,
        "info": {
            "title": "Sluice",
            "version": metadata.version("sluice"),
            "summary": "Automation flows with PostgreSQL as the only moving part.",
        },
        "tags": [
            {"name": name, "description": description}
            for name, description in [
                ("probes", "Liveness, readiness and metrics; no key needed."),
                ("projects", "Project administration (admin key) and the caller's project."),
                ("flows", "Flow definitions, deployed as numbered immutable versions."),
                ("runs", "Runs of the caller's project; another project's answer 404."),
                ("webhooks", "Start runs, and resume the ones waiting for a webhook."),
            ]
        ],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "responses": _shared_responses(),
            "parameters": _parameters(),
            "headers": {
                "RunId": {"description": "The run's id.", "schema": _UUID},
            },
            "securitySchemes": {
                "projectKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A project API key, `sk_<prefix>_<secret>`.",
                },
                "adminKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The admin key, `SLUICE_ADMIN_API_KEY`.",
                },
            },
        },
    }


def document() -> Json:
    """The OpenAPI document (a fresh copy: callers may change it)."""
    return copy.deepcopy(_cached())


# --- helpers --------------------------------------------------------------------------------


def _ref(name: str) -> Json:
    return {"$ref": _SCHEMAS + name}


def _json(description: str, schema: Json, *, run_header: bool = False) -> Json:
    response: Json = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if run_header:
        response["headers"] = {_RUN_ID_HEADER: {"$ref": "#/components/headers/RunId"}}
    return response


def _error(description: str) -> Json:
    return _json(description, _ref("Error"))


def _shared(name: str) -> Json:
    return {"$ref": f"#/components/responses/{name}"}


def _param(name: str) -> Json:
    return {"$ref": f"#/components/parameters/{name}"}


def _op(
    operation_id: str,
    summary: str,
    tag: str,
    responses: Json,
    *,
    key: str | None = None,
    parameters: tuple[Json, ...] = (),
    body: Json | None = None,
) -> Json:
    """An operation; `key` is the security scheme it needs (none when None)."""
    operation: Json = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "security": [{key: []}] if key else [],
    }
    if parameters:
        operation["parameters"] = list(parameters)
    if body is not None:
        operation["requestBody"] = body
    if key is not None:
        responses = {**responses, "401": _shared("Unauthorized")}
    operation["responses"] = dict(sorted(responses.items()))
    return operation


def _json_body(schema: Json, *, required: bool = True) -> Json:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _nullable(schema: Json) -> Json:
    return {"oneOf": [schema, {"type": "null"}]}


def _object(properties: Json, *, optional: tuple[str, ...] = (), closed: bool = False) -> Json:
    schema: Json = {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
    }
    if closed:
        schema["additionalProperties"] = False
    return schema


_STRING: Json = {"type": "string"}
_INTEGER: Json = {"type": "integer"}
_BOOLEAN: Json = {"type": "boolean"}
_UUID: Json = {"type": "string", "format": "uuid"}
_TIME: Json = {"type": "string", "format": "date-time"}
_URI: Json = {"type": "string", "format": "uri"}
_ANY: Json = {}


# --- schemas --------------------------------------------------------------------------------


def _schemas() -> Json:
    flow, api = _flow_schemas(), _api_schemas()
    clash = sorted(flow.keys() & api.keys())
    if clash:
        raise RuntimeError(f"flow definition schemas shadow API schemas: {clash}")
    return {**flow, **api}


def _flow_schemas() -> Json:
    """`FlowDefinition` (as published) with its definitions, and `FlowDeployment` (the body of
    a deploy, whose name may be left to the URL)."""
    schema = _rewrite_refs(flow_json_schema())
    definitions: Json = schema.pop("$defs", {})
    schema.pop("$schema", None)  # 2020-12 is OpenAPI 3.1's own dialect
    deployment = copy.deepcopy(schema)
    deployment["required"] = [name for name in schema.get("required", []) if name != "name"]
    deployment["title"] = "Sluice flow deployment"
    deployment["description"] = (
        "A flow definition whose `name` may be left out; if given it must match the URL's."
    )
    return {**definitions, "FlowDefinition": schema, "FlowDeployment": deployment}


def _rewrite_refs(node: Any) -> Any:
    """`node` with its ``#/$defs/`` references (and discriminator mappings) made
    ``#/components/schemas/`` ones."""
    if isinstance(node, dict):
        rewritten = {key: _rewrite_refs(value) for key, value in node.items()}
        if isinstance(node.get("$ref"), str):
            rewritten["$ref"] = _moved(node["$ref"])
        mapping = node.get("mapping")
        if isinstance(mapping, dict):
            rewritten["mapping"] = {key: _moved(value) for key, value in mapping.items()}
        return rewritten
    if isinstance(node, list):
        return [_rewrite_refs(item) for item in node]
    return node


def _moved(ref: str) -> str:
    return _SCHEMAS + ref.removeprefix("#/$defs/") if ref.startswith("#/$defs/") else ref


def _api_schemas() -> Json:
    run_summary = _object(
        {
            "id": _UUID,
            "flow": _STRING,
            "flow_id": _UUID,
            "version": _INTEGER,
            "status": _ref("RunStatus"),
            "parent_run_id": _nullable(_UUID),
            "created_at": _TIME,
            "started_at": _nullable(_TIME),
            "finished_at": _nullable(_TIME),
            "duration_seconds": _nullable({"type": "number"}),
            "error": _nullable(_STRING),
        }
    )
    flow_summary: Json = {
        "id": _UUID,
        "name": _STRING,
        "enabled": _BOOLEAN,
        "version": _INTEGER,
        "created_at": _TIME,
        "webhook_url": _URI,
    }
    return {
        "Error": _object(
            {"error": _STRING, "problems": {"type": "array", "items": _ref("Problem")}},
            optional=("problems",),
        ),
        "Problem": _object({"path": _STRING, "message": _STRING}),
        "Health": _object({"status": {"const": "ok"}}),
        "Ready": _object(
            {"status": {"const": "ready"}, "schema": _object({"current": _STRING})},
        ),
        "NotReady": _object(
            {
                "status": {"const": "unavailable"},
                "error": _STRING,
                "schema": _object({"current": _nullable(_STRING), "head": _STRING}),
            },
            optional=("schema",),
        ),
        "Project": _object(
            {
                "id": _INTEGER,
                "name": _STRING,
                "concurrency_limit": _nullable({"type": "integer", "minimum": 1}),
                "created_at": _TIME,
            }
        ),
        "NewProject": _object(
            {
                "name": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_-]{0,62}$"},
                "concurrency_limit": _nullable({"type": "integer", "minimum": 1}),
            },
            optional=("concurrency_limit",),
            closed=True,
        ),
        "ProjectCreated": _object(
            {
                "project": _ref("Project"),
                "api_key": {"type": "string", "description": "Shown only here."},
            }
        ),
        "NewApiKey": _object(
            {"name": _nullable({"type": "string", "maxLength": 200})},
            optional=("name",),
            closed=True,
        ),
        "ApiKeyCreated": _object(
            {
                "api_key": _STRING,
                "prefix": _STRING,
                "project_id": _INTEGER,
                "name": _nullable(_STRING),
            }
        ),
        "ProjectChange": _object(
            {"concurrency_limit": _nullable({"type": "integer", "minimum": 1})}, closed=True
        ),
        "Worker": _object(
            {
                "id": _STRING,
                "host": _STRING,
                "pid": _INTEGER,
                "container_type": _STRING,
                "slots": _INTEGER,
                "version": _STRING,
                "started_at": _nullable(_TIME),
                "last_seen": _nullable(_TIME),
                "stopped_at": _nullable(_TIME),
            }
        ),
        "WorkerList": _object({"workers": {"type": "array", "items": _ref("Worker")}}),
        "FlowDeployed": _object(
            {
                "id": _UUID,
                "name": _STRING,
                "version": _INTEGER,
                "created": _BOOLEAN,
                "webhook_url": _URI,
            }
        ),
        "FlowSummary": _object(flow_summary),
        "FlowList": _object({"flows": {"type": "array", "items": _ref("FlowSummary")}}),
        "Flow": _object(
            {
                **flow_summary,
                "version_created_at": _TIME,
                "definition": _ref("FlowDefinition"),
            }
        ),
        "FlowEnabled": _object({"name": _STRING, "enabled": _BOOLEAN}),
        "RunStatus": {"type": "string", "enum": [status.value for status in RunStatus]},
        "RunSummary": run_summary,
        "Run": {
            "allOf": [
                _ref("RunSummary"),
                _object(
                    {
                        "trigger": _object(
                            {
                                "body": _ANY,
                                "headers": {"type": "object"},
                                "query": {"type": "object"},
                            }
                        ),
                        "output": _ANY,
                        "response": _nullable(
                            {
                                "type": "object",
                                "properties": {
                                    "status": _INTEGER,
                                    "headers": {"type": "object"},
                                    "body": _ANY,
                                },
                            }
                        ),
                        "steps": {"type": "array", "items": _ref("StepRun")},
                        "children": {"type": "array", "items": _ref("RunSummary")},
                    }
                ),
            ]
        },
        "StepRun": _object(
            {
                "key": _STRING,
                "step_id": _STRING,
                "type": _STRING,
                "status": {"type": "string", "enum": [status.value for status in StepStatus]},
                "attempts": _INTEGER,
                "started_at": _nullable(_TIME),
                "finished_at": _nullable(_TIME),
                "duration_seconds": _nullable({"type": "number"}),
                "output": _ANY,
                "error": _nullable(_STRING),
                "stdout": _nullable(_STRING),
                "stderr": _nullable(_STRING),
            }
        ),
        "RunList": _object(
            {
                "runs": {"type": "array", "items": _ref("RunSummary")},
                "next_cursor": _nullable(_STRING),
            }
        ),
        "RunAccepted": _object({"run_id": _UUID}),
        "RunEnded": _object(
            {"run_id": _UUID, "status": _ref("RunStatus"), "error": _nullable(_STRING)}
        ),
        "Resumed": _object({"run_id": _UUID, "step": _STRING, "status": {"const": "resumed"}}),
    }


# --- shared parts ---------------------------------------------------------------------------


def _shared_responses() -> Json:
    return {
        "Unauthorized": _error("The key is missing or not valid."),
        "NotFound": _error("No such object (another project's objects answer the same)."),
        "InvalidBody": _error("The body has wrong types or unknown fields; see `problems`."),
        "MalformedJson": _error("The body is empty or not JSON."),
        "TooLarge": _error("The body exceeds SLUICE_MAX_BODY_BYTES (the limit is in `limit`)."),
    }


def _parameters() -> Json:
    def path(name: str, schema: Json, description: str) -> Json:
        return {
            "name": name,
            "in": "path",
            "required": True,
            "schema": schema,
            "description": description,
        }

    return {
        "ProjectId": path("project_id", _INTEGER, "The project's id."),
        "FlowName": path(
            "name", {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_-]{0,62}$"}, "A flow's name."
        ),
        "FlowId": path("flow_id", _UUID, "The flow's id (in its `webhook_url`)."),
        "RunId": path("run_id", _UUID, "The run's id."),
        "ResumeToken": path("token", _STRING, "The token of the waiting step's resume URL."),
        "Signature": {
            "name": SIGNATURE_HEADER,
            "in": "header",
            "required": False,
            "schema": {"type": "string", "pattern": "^sha256=[0-9a-fA-F]{64}$"},
            "description": "`sha256=<hex HMAC-SHA256 of the body>` under the flow's "
            "`trigger.secret`; required when the flow has one.",
        },
    }


# --- paths ----------------------------------------------------------------------------------


def _paths() -> Json:
    return {
        **_probe_paths(),
        **_project_paths(),
        **_flow_paths(),
        **_run_paths(),
        **_webhook_paths(),
    }


def _probe_paths() -> Json:
    return {
        "/health": {
            "get": _op(
                "health",
                "Liveness: the process serves HTTP.",
                "probes",
                {"200": _json("Serving.", _ref("Health"))},
            )
        },
        "/ready": {
            "get": _op(
                "ready",
                "Readiness: the database answers and its schema is at head.",
                "probes",
                {
                    "200": _json("Ready.", _ref("Ready")),
                    "503": _json("Not ready.", _ref("NotReady")),
                },
            )
        },
        "/metrics": {
            "get": _op(
                "metrics",
                "Metrics in the Prometheus text format.",
                "probes",
                {
                    "200": {
                        "description": "This process's metrics, with run and queue gauges.",
                        "content": {metrics.CONTENT_TYPE.split(";")[0]: {"schema": _STRING}},
                    }
                },
            )
        },
        "/openapi.json": {
            "get": _op(
                "openapi",
                "This document.",
                "probes",
                {"200": _json("The OpenAPI 3.1 document.", {"type": "object"})},
            )
        },
    }


def _project_paths() -> Json:
    admin = "adminKey"
    invalid = {"400": _shared("MalformedJson"), "413": _shared("TooLarge")}
    return {
        "/api/v1/projects": {
            "post": _op(
                "createProject",
                "Create a project and its first API key (shown only in this reply).",
                "projects",
                {
                    "201": _json("Created.", _ref("ProjectCreated")),
                    "409": _error("The name is taken."),
                    "422": _shared("InvalidBody"),
                    **invalid,
                },
                key=admin,
                body=_json_body(_ref("NewProject")),
            )
        },
        "/api/v1/projects/{project_id}": {
            "patch": _op(
                "changeProject",
                "Set a project's concurrency limit (null: unlimited).",
                "projects",
                {
                    "200": _json("The project.", _ref("Project")),
                    "404": _shared("NotFound"),
                    "422": _shared("InvalidBody"),
                    **invalid,
                },
                key=admin,
                parameters=(_param("ProjectId"),),
                body=_json_body(_ref("ProjectChange")),
            )
        },
        "/api/v1/projects/{project_id}/api-keys": {
            "post": _op(
                "createApiKey",
                "Create another API key for a project (shown only in this reply).",
                "projects",
                {
                    "201": _json("Created.", _ref("ApiKeyCreated")),
                    "404": _shared("NotFound"),
                    "422": _shared("InvalidBody"),
                    **invalid,
                },
                key=admin,
                parameters=(_param("ProjectId"),),
                body=_json_body(_ref("NewApiKey")),
            )
        },
        "/api/v1/project": {
            "get": _op(
                "ownProject",
                "The project the key belongs to.",
                "projects",
                {"200": _json("The project.", _ref("Project"))},
                key="projectKey",
            )
        },
        "/api/v1/workers": {
            "get": _op(
                "listWorkers",
                "The worker registry.",
                "projects",
                {"200": _json("Recently seen workers.", _ref("WorkerList"))},
                key="projectKey",
            )
        },
    }


def _flow_paths() -> Json:
    key = "projectKey"
    name = (_param("FlowName"),)
    missing = {"404": _shared("NotFound")}

    def switch(enabled: bool) -> Json:
        word = "enable" if enabled else "disable"
        return {
            "post": _op(
                f"{word}Flow",
                f"Switch a flow {'on' if enabled else 'off'}.",
                "flows",
                {"200": _json("The flow's new state.", _ref("FlowEnabled")), **missing},
                key=key,
                parameters=name,
            )
        }

    return {
        "/api/v1/flow-schema": {
            "get": _op(
                "flowSchema",
                "The JSON Schema of flow definitions.",
                "flows",
                {"200": _json("JSON Schema, draft 2020-12.", {"type": "object"})},
            )
        },
        "/api/v1/flows": {
            "get": _op(
                "listFlows",
                "The project's flows.",
                "flows",
                {"200": _json("The flows.", _ref("FlowList"))},
                key=key,
            )
        },
        "/api/v1/flows/{name}": {
            "put": _op(
                "deployFlow",
                "Add an immutable version (an identical definition adds nothing).",
                "flows",
                {
                    "201": _json("A new version.", _ref("FlowDeployed")),
                    "200": _json("Identical to the latest version.", _ref("FlowDeployed")),
                    "400": _shared("MalformedJson"),
                    "413": _shared("TooLarge"),
                    "422": _error("An invalid definition; each problem with its path."),
                },
                key=key,
                parameters=name,
                body=_json_body(_ref("FlowDeployment")),
            ),
            "get": _op(
                "showFlow",
                "A flow with its latest version's definition.",
                "flows",
                {"200": _json("The flow.", _ref("Flow")), **missing},
                key=key,
                parameters=name,
            ),
            "delete": _op(
                "deleteFlow",
                "Hide a flow (its versions are kept; the name can be reused).",
                "flows",
                {"204": {"description": "Deleted."}, **missing},
                key=key,
                parameters=name,
            ),
        },
        "/api/v1/flows/{name}/enable": switch(True),
        "/api/v1/flows/{name}/disable": switch(False),
    }


def _run_paths() -> Json:
    key = "projectKey"
    run = (_param("RunId"),)
    missing = {"404": _shared("NotFound")}
    query = [
        ("flow", _STRING, "Only runs of the flow with this name."),
        ("status", _ref("RunStatus"), "Only runs with this status (any case)."),
        (
            "limit",
            {"type": "integer", "minimum": 1, "maximum": run_views.MAX_PAGE, "default": 50},
            "Runs per page.",
        ),
        ("cursor", _STRING, "The `next_cursor` of the previous page."),
    ]
    return {
        "/api/v1/runs": {
            "get": _op(
                "listRuns",
                "A page of the project's runs, newest first.",
                "runs",
                {
                    "200": _json(
                        "The runs, and the next page's cursor (or null).", _ref("RunList")
                    ),
                    "422": _error("An invalid query parameter; see `problems`."),
                },
                key=key,
                parameters=tuple(
                    {
                        "name": name,
                        "in": "query",
                        "required": False,
                        "schema": schema,
                        "description": description,
                    }
                    for name, schema, description in query
                ),
            )
        },
        "/api/v1/runs/{run_id}": {
            "get": _op(
                "showRun",
                "A run with its trigger, output, reply, steps and child runs.",
                "runs",
                {"200": _json("The run.", _ref("Run")), **missing},
                key=key,
                parameters=run,
            )
        },
        "/api/v1/runs/{run_id}/cancel": {
            "post": _op(
                "cancelRun",
                "Cancel a run that has not ended, and its child runs.",
                "runs",
                {
                    "200": _json("The canceled run.", _ref("RunSummary")),
                    "409": _error("The run has ended already."),
                    **missing,
                },
                key=key,
                parameters=run,
            )
        },
        "/api/v1/runs/{run_id}/retry": {
            "post": _op(
                "retryRun",
                "Queue a run that ended unsuccessfully again, from its first unfinished step.",
                "runs",
                {
                    "202": _json("The run, queued again.", _ref("RunSummary")),
                    "409": _error("The run has not ended, or it succeeded."),
                    **missing,
                },
                key=key,
                parameters=run,
            )
        },
    }


def _webhook_paths() -> Json:
    any_body = {
        "required": False,
        "description": "Any body: JSON when it parses (and it must when the content type "
        "says JSON), else text; empty is `{}`. It becomes `trigger.body`.",
        "content": {"*/*": {"schema": _ANY}},
    }
    bad_body = {
        "400": _error("The content type says JSON; the body is not."),
        "413": _shared("TooLarge"),
    }
    accepted = _json("Accepted: the run is committed.", _ref("RunAccepted"), run_header=True)
    sync_replies = {
        "200": {
            "description": "The run's reply: its `respond` step's body (text or JSON), or "
            "the run's output when it succeeded without one.",
            "headers": {_RUN_ID_HEADER: {"$ref": "#/components/headers/RunId"}},
            "content": {"application/json": {"schema": _ANY}, "text/plain": {"schema": _STRING}},
        },
        "202": _json(
            "No reply within SLUICE_SYNC_TIMEOUT_SECONDS; the run goes on.",
            _ref("RunAccepted"),
            run_header=True,
        ),
        "500": _json("The run ended without success.", _ref("RunEnded"), run_header=True),
        "default": {
            "description": "The status, headers and body a `respond` step set.",
            "headers": {_RUN_ID_HEADER: {"$ref": "#/components/headers/RunId"}},
            "content": {"application/json": {"schema": _ANY}, "text/plain": {"schema": _STRING}},
        },
    }
    webhook = {
        "404": _error("No enabled flow with this id."),
        "401": _error(
            f"The flow wants a signed body and `{SIGNATURE_HEADER}` is missing or wrong."
        ),
        **bad_body,
    }
    resume = {
        "404": _error("No such run, or the token does not match a waiting step."),
        "409": _error("The run has ended, or this step was resumed already."),
        **bad_body,
    }
    hook_params = (_param("FlowId"), _param("Signature"))
    resume_params = (_param("RunId"), _param("ResumeToken"))
    return {
        "/webhooks/{flow_id}": {
            "post": _op(
                "triggerFlow",
                "Start a run of the flow.",
                "webhooks",
                {"202": accepted, **webhook},
                parameters=hook_params,
                body=any_body,
            )
        },
        "/webhooks/{flow_id}/sync": {
            "post": _op(
                "triggerFlowSync",
                "Start a run and wait for its reply.",
                "webhooks",
                {**sync_replies, **webhook},
                parameters=hook_params,
                body=any_body,
            )
        },
        "/resume/{run_id}/{token}": {
            "post": _op(
                "resumeRun",
                "Continue a run waiting in a `wait_for_webhook` step; the body is its output.",
                "webhooks",
                {
                    "202": _json("Resumed.", _ref("Resumed"), run_header=True),
                    **resume,
                },
                parameters=resume_params,
                body=any_body,
            )
        },
        "/resume/{run_id}/{token}/sync": {
            "post": _op(
                "resumeRunSync",
                "Continue a waiting run and wait for its next reply.",
                "webhooks",
                {**sync_replies, **resume},
                parameters=resume_params,
                body=any_body,
            )
        },
    }
