"""The documented replies and bodies of the resume operations: approval pages (HTML for a
browser, JSON for a machine) and a key holder's resume."""

from __future__ import annotations

from typing import Any

from app.flows import decisions
from app.web import schemas
from app.web._shared import READ_BODY, RESUME_ERRORS, RUN_NOT_FOUND
from app.web.openapi import JSON, Body, Reply, error_reply, json_reply
from app.web.schemas import Error

HTML = "text/html"


def _either(description: str) -> Reply:
    """An error answered as a page to a browser (`Accept: text/html`), else as JSON."""
    return Reply(description, {JSON: Error, HTML: str})


APPROVAL_PAGE_REPLIES = {
    "200": Reply(
        "The approval page: the flow, the run and the step, what it asks (its `title` and "
        "`description`), its form, an optional comment and name, and a button per choice. "
        "A step no longer waiting shows what was decided (or that it timed out, or the run "
        "ended).",
        {HTML: str},
    ),
    "404": _either("No such run, or the token does not match a waiting step."),
}
PAGE_RESUME_REPLIES = {
    "200": Reply(
        "From the approval page (a form, `Accept: text/html`): the decision is recorded as "
        "the step's output and the run goes on; a confirmation page.",
        {HTML: str},
    ),
    "202": json_reply("Resumed.", schemas.Resumed, run_header=True),
    **RESUME_ERRORS,
    "400": _either(
        "A machine's body that is not JSON though it says so (or breaks a JSON limit, named "
        "in `limit`), a malformed form, a NUL; from the approval page, a decision that does "
        "not fit the step's choices and form: the page again, each problem by its field."
    ),
    "404": _either("No such run, or the token does not match a waiting step."),
    "409": _either(
        "The run has ended, or this step was resumed already (the page says what was decided)."
    ),
}
KEY_RESUME_BODY = Body(
    {JSON: Any},
    description='A decision, `{"choice": …, "comment"?: …, "fields"?: {…}}` (checked '
    f"against the step's `choices` and `form`; the output is `{{choice, comment, fields, by, "
    f"at}}` with `by` the key's prefix), or any other body, which becomes the step's output "
    f"as a resume URL's does; empty is `{{}}`. Decision keys: {sorted(decisions.DECISION_KEYS)}.",
    required=False,
)
KEY_RESUME_REPLIES = {
    "202": json_reply("Resumed: the run goes on.", schemas.Resumed, run_header=True),
    "400": error_reply(
        "The body is not JSON though it says so (or breaks a JSON limit, named in `limit`), "
        "or it is a decision that does not fit the step's choices and form (see `problems`)."
    ),
    "404": error_reply("No such run of the project, or the step is not waiting for a webhook."),
    "409": error_reply("The run has ended, or this step was resumed already."),
    "422": RUN_NOT_FOUND["422"],
    "408": READ_BODY["408"],
    "413": READ_BODY["413"],
}
