"""The projects operations of the API table (`app.web.api`): administration with the admin
key, and the caller's own project."""

from __future__ import annotations

from app.web import projects, schemas
from app.web._shared import NOT_FOUND, VALIDATED_BODY
from app.web.openapi import Operation, Parameter, error_reply, json_body, json_reply

BAD_QUERY = {"422": error_reply("An invalid `limit` or `cursor` (see `problems`).")}
_PAGE = (
    Parameter(
        "limit",
        "query",
        {
            "type": "integer",
            "minimum": 1,
            "maximum": projects.MAX_PAGE,
            "default": projects.MAX_PAGE,
        },
        "How many to list.",
    ),
    Parameter("cursor", "query", str, "The `next_cursor` of the page before."),
)
ADMINISTRATION = (
    Operation(
        "GET /api/v1/projects",
        projects.list_projects,
        {"200": json_reply("A page of the projects, by id.", schemas.ProjectList), **BAD_QUERY},
        parameters=_PAGE,
    ),
    Operation(
        "GET /api/v1/projects/{project_id}/api-keys",
        projects.list_api_keys,
        {
            "200": json_reply("The project's newest keys, revoked ones too.", schemas.ApiKeyList),
            **NOT_FOUND,
            **BAD_QUERY,
        },
        parameters=_PAGE[:1],
    ),
    Operation(
        "POST /api/v1/api-keys/{prefix}/revoke",
        projects.revoke_api_key,
        {"200": json_reply("The key, revoked: refused from now on.", schemas.ApiKey), **NOT_FOUND},
    ),
    Operation(
        "POST /api/v1/projects",
        projects.create_project,
        {
            "201": json_reply("Created.", schemas.ProjectCreated),
            "409": error_reply("The name is taken."),
            **VALIDATED_BODY,
        },
        body=json_body(projects.NewProject),
    ),
    Operation(
        "POST /api/v1/projects/{project_id}/api-keys",
        projects.create_api_key,
        {"201": json_reply("Created.", schemas.ApiKeyCreated), **NOT_FOUND, **VALIDATED_BODY},
        body=json_body(projects.NewApiKey),
    ),
    Operation(
        "PATCH /api/v1/projects/{project_id}",
        projects.change_project,
        {"200": json_reply("The project.", schemas.Project), **NOT_FOUND, **VALIDATED_BODY},
        body=json_body(projects.ProjectChange),
    ),
)
OWN_PROJECT = (
    Operation(
        "GET /api/v1/project",
        projects.own_project,
        {"200": json_reply("The project.", schemas.Project)},
    ),
)
ACROSS_PROJECTS = (
    Operation(
        "GET /api/v1/workers",
        projects.list_workers,
        {
            "200": json_reply("Recently seen workers.", schemas.WorkerList),
            "403": error_reply("A project key: this view covers every project."),
        },
    ),
)
