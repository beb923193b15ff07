"""The flow versions operations of the API table (`app.web.api`): routes, handlers and
their documented replies."""

from __future__ import annotations

from app.web import schemas, versions
from app.web._shared import NOT_FOUND, VALIDATED_BODY
from app.web.openapi import Operation, Parameter, error_reply, json_body, json_reply

VERSIONS = (
    Operation(
        "GET /api/v1/flows/{name}/versions",
        versions.list_versions,
        {
            "200": json_reply("The flow's versions, newest first.", schemas.FlowVersionList),
            "422": error_reply("An invalid `limit` or `cursor` (see `problems`)."),
            **NOT_FOUND,
        },
        parameters=(
            Parameter(
                "limit",
                "query",
                {"type": "integer", "minimum": 1, "maximum": versions.MAX_PAGE, "default": 50},
                "How many versions to list.",
            ),
            Parameter("cursor", "query", str, "The `next_cursor` of the page before."),
        ),
    ),
    Operation(
        "GET /api/v1/flows/{name}/versions/{version}",
        versions.show_version,
        {"200": json_reply("The version, as deployed.", schemas.FlowVersionDetail), **NOT_FOUND},
    ),
    Operation(
        "POST /api/v1/flows/{name}/rollback",
        versions.roll_back,
        {
            "200": json_reply("The flow, now starting runs on that version.", schemas.Flow),
            **NOT_FOUND,
            **VALIDATED_BODY,
        },
        body=json_body(versions.Rollback),
    ),
)
