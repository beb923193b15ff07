"""The retry and replay operations of the API table (`app.web.api`): routes, handlers and
their documented replies."""

from __future__ import annotations

from app.flows.run_views import RunSummary
from app.web import replays
from app.web._shared import NOT_FOUND, READ_BODY
from app.web.openapi import Body, Operation, error_reply, json_reply

_BAD_BODY = error_reply(
    "The body has wrong types or unknown fields (a version other than `pinned` or "
    "`latest`), or names a step or flow that does not exist; see `problems`.",
    "InvalidRetry",
)
_BAD_RUN_BODY = error_reply(
    "The body has wrong types or unknown fields (a version other than `pinned` or "
    "`latest`), or names a step that does not exist (see `problems`); or the short run id "
    "starts the ids of several of the project's runs (see `candidates`).",
    "InvalidRunRetry",
)


def _optional(model: type, description: str) -> Body:
    return Body({"application/json": model}, description=description, required=False)


REPLAY = (
    Operation(
        "POST /api/v1/runs/{run_id}/retry",
        replays.retry_run,
        {
            "202": json_reply("The run, queued again.", RunSummary),
            "409": error_reply("The run has not ended, or it succeeded."),
            **READ_BODY,
            "422": _BAD_RUN_BODY,
            **NOT_FOUND,
        },
        body=_optional(replays.RetryRequest, "Optional: empty is a pinned retry."),
    ),
    Operation(
        "POST /api/v1/runs/{run_id}/replay",
        replays.replay_run,
        {
            "202": json_reply("The new run, committed: it will run.", RunSummary),
            "409": error_reply("The run has not ended yet."),
            "429": error_reply(
                "The project has SLUICE_MAX_LIVE_RUNS live runs: nothing was started; retry "
                "once some have ended."
            ),
            **READ_BODY,
            "422": _BAD_RUN_BODY,
            **NOT_FOUND,
        },
        body=_optional(replays.ReplayRequest, "Optional: empty replays the same trigger."),
    ),
    Operation(
        "POST /api/v1/runs/retry",
        replays.bulk_retry,
        {
            "200": json_reply("A dry run: how many runs match.", replays.BulkRetryAccepted),
            "202": json_reply(
                "Accepted: how many runs match; the queue retries them in batches.",
                replays.BulkRetryAccepted,
            ),
            **READ_BODY,
            "422": _BAD_BODY,
        },
        body=_optional(replays.BulkRetryRequest, "The filter; empty: every failed run."),
    ),
)
