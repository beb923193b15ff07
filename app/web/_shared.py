"""The replies, bodies and parameters that several operations of `app.web.api` share."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from app.flows.definition import FlowName
from app.web import schemas
from app.web.openapi import JSON, Body, Parameter, Reply, error_reply, json_reply
from app.web.webhooks import SIGNATURE_HEADER

UNAVAILABLE = {
    "503": error_reply(
        "The database is unavailable (restarting, unreachable): nothing was done unless "
        "`run_id` says a run exists; retry after `Retry-After` seconds (a webhook with its "
        "`Idempotency-Key`).",
        "Unavailable",
    )
}
IDEMPOTENCY = Parameter(
    "idempotency-key",
    "header",
    str,
    "Up to 255 characters naming this request's event: a request with the same key for "
    "the same flow, within SLUICE_IDEMPOTENCY_WINDOW_SECONDS, makes no run and gets the "
    "first request's answer (its run id, or its run's reply).",
    "IdempotencyKey",
)
NOT_FOUND = {
    "404": error_reply("No such object (another project's objects answer the same).", "NotFound")
}
RUN_NOT_FOUND = {
    **NOT_FOUND,
    "422": error_reply(
        "The short run id starts the ids of several of the project's runs (the newest ten in "
        "`candidates`): give more of it.",
        "AmbiguousRunId",
    ),
}
"""The replies of an operation on ``/api/v1/runs/{run_id}…``, whose run id may be short."""
_TOO_SLOW = error_reply(
    "The body did not arrive within SLUICE_HTTP_BODY_TIMEOUT_SECONDS; the connection is closed.",
    "TooSlow",
)
READ_BODY = {
    "400": error_reply(
        "The body is empty or not JSON, nests deeper than SLUICE_MAX_JSON_DEPTH or has a "
        "number longer than SLUICE_MAX_JSON_NUMBER_DIGITS (the limit is in `limit`), or holds "
        "what cannot be stored (a NUL, a lone surrogate, a number out of range).",
        "MalformedJson",
    ),
    "408": _TOO_SLOW,
    "413": error_reply(
        "The body exceeds SLUICE_MAX_BODY_BYTES (the limit is in `limit`).", "TooLarge"
    ),
}
VALIDATED_BODY = {
    **READ_BODY,
    "422": error_reply(
        "The body has wrong types or unknown fields; see `problems`.", "InvalidBody"
    ),
}
WEBHOOK_BODY = Body(
    {"*/*": Any},
    description="Any body: JSON when it parses within the JSON limits (and it must when the "
    "content type says JSON); the fields of a form (`application/x-www-form-urlencoded`, "
    "`multipart/form-data`) as an object; else text; empty is `{}`. It becomes "
    "`trigger.body`.",
    required=False,
)
_BAD_WEBHOOK_INPUT = {
    "400": error_reply(
        "The content type says JSON and the body is not (or breaks a JSON limit, named in "
        "`limit`), a form is malformed, or the body or query holds a NUL."
    ),
    "408": _TOO_SLOW,
    "413": READ_BODY["413"],
}
WEBHOOK_ERRORS = {
    "401": error_reply(
        "The flow verifies its requests (`trigger.verify`) and this one failed: a missing or "
        "wrong signature, a timestamp outside the tolerance, or wrong credentials."
    ),
    "404": error_reply("No enabled flow with this id (or name), or it has no webhook."),
    "429": error_reply(
        "The flow's project has SLUICE_MAX_LIVE_RUNS live runs: nothing was started; retry "
        "once some have ended."
    ),
    **_BAD_WEBHOOK_INPUT,
}
HANDSHAKE = {
    "200": json_reply(
        "A sender's handshake (GitHub's `ping`, Slack's `url_verification`), answered "
        "without a run.",
        {"type": "object"},
    )
}
RESUME_ERRORS = {
    "404": error_reply("No such run, or the token does not match a waiting step."),
    "409": error_reply("The run has ended, or this step was resumed already."),
    **_BAD_WEBHOOK_INPUT,
}
_RUN_REPLY = {JSON: Any, "text/plain": str}
SYNC_REPLIES = {
    "200": Reply(
        "The run's reply: its `respond` step's body (text or JSON), or the run's output when "
        "it succeeded without one.",
        _RUN_REPLY,
        run_header=True,
    ),
    "202": json_reply(
        "No reply within SLUICE_SYNC_TIMEOUT_SECONDS; the run goes on.",
        schemas.RunAccepted,
        run_header=True,
    ),
    "500": json_reply("The run ended without success.", schemas.RunEnded, run_header=True),
    "default": Reply(
        "The status, headers and body a `respond` step set.", _RUN_REPLY, run_header=True
    ),
}

PATH_PARAMETERS = {
    parameter.name: parameter
    for parameter in (
        Parameter(
            "project_id",
            "path",
            str,
            "The project's id, or its name (a name of digits only is given by its id).",
            "ProjectId",
        ),
        Parameter(
            "prefix", "path", str, "An API key's prefix: the key is `sk_<prefix>_…`.", "KeyPrefix"
        ),
        Parameter("name", "path", FlowName, "A flow's name.", "FlowName"),
        Parameter("flow_id", "path", UUID, "The flow's id (in its `webhook_url`).", "FlowId"),
        Parameter("project", "path", str, "The project's name.", "ProjectName"),
        Parameter("flow", "path", FlowName, "The flow's name.", "FlowNameInUrl"),
        Parameter("version", "path", int, "A version's number (1, 2, …).", "FlowVersionNumber"),
        Parameter(
            "run_id",
            "path",
            str,
            "The run's id; under `/api/v1` also a unique prefix of it (at least 6 hex digits).",
            "RunId",
        ),
        Parameter(
            "token", "path", str, "The token of the waiting step's resume URL.", "ResumeToken"
        ),
        Parameter(
            "step_id",
            "path",
            str,
            "The waiting step's key: its id (inside a loop, `each[2].approve`).",
            "StepKey",
        ),
    )
}
SIGNATURE = Parameter(
    SIGNATURE_HEADER,
    "header",
    {"type": "string", "pattern": "^sha256=[0-9a-fA-F]{64}$"},
    "`sha256=<hex HMAC-SHA256 of the body>` under the flow's `trigger.secret`; required "
    "when the flow has one.",
    "Signature",
)
