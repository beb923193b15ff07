"""The secrets and vars operations of the API table (`app.web.api`): routes, handlers and
their documented replies."""

from __future__ import annotations

from app.web import schemas, secrets
from app.web._shared import NOT_FOUND, VALIDATED_BODY
from app.web.openapi import Operation, Reply, error_reply, json_body, json_reply

_BAD_NAME = error_reply("The name is not letters, digits and _ (not starting with a digit).")
SECRETS = (
    Operation(
        "GET /api/v1/secrets",
        secrets.list_secrets,
        {"200": json_reply("The secrets' names and times, never values.", schemas.SecretList)},
    ),
    Operation(
        "PUT /api/v1/secrets/{name}",
        secrets.put_secret,
        {
            "200": json_reply("Replaced.", schemas.Secret),
            "201": json_reply("Created.", schemas.Secret),
            "503": error_reply("No SLUICE_SECRETS_KEY: secrets cannot be stored."),
            **VALIDATED_BODY,
        },
        body=json_body(secrets.SecretValue),
    ),
    Operation(
        "DELETE /api/v1/secrets/{name}",
        secrets.delete_secret,
        {"204": Reply("Deleted."), "422": _BAD_NAME, **NOT_FOUND},
    ),
    Operation(
        "GET /api/v1/vars",
        secrets.list_vars,
        {"200": json_reply("The vars with their values.", schemas.VarList)},
    ),
    Operation(
        "GET /api/v1/vars/{name}",
        secrets.get_var,
        {"200": json_reply("The var.", schemas.Var), "422": _BAD_NAME, **NOT_FOUND},
    ),
    Operation(
        "PUT /api/v1/vars/{name}",
        secrets.put_var,
        {
            "200": json_reply("Replaced.", schemas.Var),
            "201": json_reply("Created.", schemas.Var),
            **VALIDATED_BODY,
        },
        body=json_body(secrets.VarValue),
    ),
    Operation(
        "DELETE /api/v1/vars/{name}",
        secrets.delete_var,
        {"204": Reply("Deleted."), "422": _BAD_NAME, **NOT_FOUND},
    ),
)
