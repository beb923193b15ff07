"""The JSON replies of the HTTP API, each shape defined once; ``GET /openapi.json`` publishes
their JSON Schemas (the run shapes are `app.flows.run_views`').

A reply built from records is a pydantic model (a `View`: it writes UUIDs and timestamps
as the API always has). A reply whose values are JSON already is a TypedDict, built at the
cost of a dict: the webhook path answers hundreds of requests a second. A TypedDict key
that is `NotRequired` is absent when it does not apply, never null.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired, Required
from uuid import UUID

from pydantic import Field, WithJsonSchema
from starlette.responses import JSONResponse
from typing_extensions import TypedDict  # pydantic reads typing's only from Python 3.12

from app.flows.model import RunStatus
from app.flows.run_views import Run, RunSummary
from app.views import Timestamp, View

COMPONENT = "#/components/schemas/{model}"

UuidText = Annotated[str, WithJsonSchema({"type": "string", "format": "uuid"})]
Url = Annotated[str, WithJsonSchema({"type": "string", "format": "uri"})]
Limit = Annotated[int, Field(ge=1)]


def reply(view: View, status_code: int = 200) -> JSONResponse:
    return JSONResponse(view.model_dump(mode="json"), status_code=status_code)


# --- errors and probes: JSON already ------------------------------------------------------


class Problem(TypedDict):
    """One thing wrong with the input: where (a field's path) and what."""

    path: str
    message: str


class RunCandidate(TypedDict):
    """A run whose id starts with an ambiguous short id."""

    id: UuidText
    flow: str
    status: str
    created_at: str


class ErrorDetails(TypedDict, total=False):
    problems: list[Problem]
    candidates: list[RunCandidate]
    limit: int
    retry_after_seconds: int
    run_id: UuidText
    request_id: str


class Error(ErrorDetails):
    """Every error: its message, with `problems` when the input was invalid, the `limit` a
    body broke (its size in bytes, its JSON depth or digits), `retry_after_seconds` when
    the database is unavailable (also in `Retry-After`), the `run_id` of a webhook's run
    once it exists (also in `X-Sluice-Run-Id`), the `candidates` a short run id could
    name when it names more than one run (the newest ten), and the `request_id` of an
    internal error, which the server log names with its traceback."""

    error: Required[str]


class Health(TypedDict):
    status: Literal["ok"]


class SchemaAtHead(TypedDict):
    current: str


class Ready(TypedDict):
    status: Literal["ready"]
    schema: SchemaAtHead


class SchemaBehind(TypedDict):
    current: str | None
    head: str


class NotReady(TypedDict):
    """Not ready: the database is unreachable, or (with `schema`) not migrated to head."""

    status: Literal["unavailable"]
    error: str
    schema: NotRequired[SchemaBehind]


# --- webhooks: JSON already ---------------------------------------------------------------


class RunAccepted(TypedDict):
    """The run is committed and will run."""

    run_id: UuidText


class RunEnded(TypedDict):
    """A sync caller's run ended without success and without a reply."""

    run_id: UuidText
    status: RunStatus
    error: str | None


class Resumed(TypedDict):
    run_id: UuidText
    step: str
    status: Literal["resumed"]


# --- projects -------------------------------------------------------------------------------


class Project(View):
    id: int
    name: str
    concurrency_limit: Limit | None
    allow_network: bool = Field(description="Whether its code steps may ask for network.")
    on_failure_flow: str | None = Field(
        description="The flow a failed run starts when its flow names no `on_failure`."
    )
    created_at: Timestamp


class ProjectCreated(View):
    project: Project
    api_key: str = Field(description="Shown only here.")


class ProjectList(View):
    projects: list[Project]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class ApiKey(View):
    """A key as listed: never its secret or hash."""

    prefix: str = Field(description="The key's visible part: the key is `sk_<prefix>_…`.")
    project_id: int
    name: str | None
    created_at: Timestamp
    last_used_at: Timestamp | None = Field(description="To the minute.")
    revoked_at: Timestamp | None


class ApiKeyList(View):
    api_keys: list[ApiKey]


class ApiKeyCreated(View):
    api_key: str = Field(description="Shown only here.")
    prefix: str
    project_id: int
    name: str | None


class Worker(View):
    id: str
    host: str
    pid: int
    container_type: str
    slots: int
    version: str
    started_at: Timestamp | None
    last_seen: Timestamp | None
    stopped_at: Timestamp | None


class WorkerList(View):
    workers: list[Worker]


# --- flows ----------------------------------------------------------------------------------


class FlowDeployed(View):
    id: UUID
    name: str
    version: int
    created: bool = Field(description="False when the definition equals the latest version's.")
    webhook_url: Url
    stable_webhook_url: Url = Field(
        description="`/webhooks/{project}/{flow}`: the same across redeploys and recreations."
    )
    warnings: list[Problem] = Field(
        default_factory=list,
        description="What may fail at run time though the definition is valid: calls to "
        "flows the project does not have (yet).",
    )


class _FlowHead(View):
    id: UUID
    name: str
    enabled: bool
    version: int = Field(description="The latest version.")
    created_at: Timestamp


class FlowSummary(_FlowHead):
    webhook_url: Url
    stable_webhook_url: Url


class Schedule(View):
    """A schedule trigger of a flow's latest version, and when it fires."""

    index: int = Field(description="Its position among the flow's triggers.")
    cron: str | None
    every: str | None
    timezone: str
    overlap: Literal["skip", "queue", "allow"]
    catch_up: Literal["none", "latest", "all"]
    next: list[Timestamp] = Field(
        description="Its next three ticks (none while the flow is disabled)."
    )
    last_run_at: Timestamp | None = Field(description="Its latest tick that started a run.")


class ProjectSchedule(Schedule):
    flow: str
    enabled: bool


class ScheduleList(View):
    schedules: list[ProjectSchedule]


class Flow(_FlowHead):
    """A flow with its latest version's definition."""

    version_created_at: Timestamp
    webhook_url: Url
    stable_webhook_url: Url
    schedules: list[Schedule]
    # In an allOf: pydantic looks a bare $ref up among its own definitions.
    definition: Annotated[
        dict[str, Any],
        WithJsonSchema({"allOf": [{"$ref": COMPONENT.format(model="FlowDefinition")}]}),
    ]


class FlowList(View):
    flows: list[FlowSummary]


class FlowVersion(View):
    version: int
    created_at: Timestamp
    created_by: str | None = Field(description="The deploying API key's prefix.")
    content_hash: str
    live: bool = Field(description="Whether new runs start with this version.")


class FlowVersionList(View):
    versions: list[FlowVersion]
    next_cursor: str | None = Field(description="Pass as `cursor` for older versions.")


class FlowVersionDetail(FlowVersion):
    definition: Annotated[
        dict[str, Any],
        WithJsonSchema({"allOf": [{"$ref": COMPONENT.format(model="FlowDefinition")}]}),
    ]


class FlowEnabled(TypedDict):
    name: str
    enabled: bool


# --- runs -----------------------------------------------------------------------------------


class RunList(View):
    runs: list[RunSummary]
    next_cursor: str | None = Field(description="The next page's `cursor`; null on the last.")


class PendingWait(View):
    """What a paused run waits for at one step: a `delay` until `resume_at`, a `webhook`
    (a `wait_for_webhook` step: its resume URL, what it asks, and `resume_at`, when it
    times out, if it does), or a `subflow`'s child run."""

    step: str = Field(description="The step instance's key (the step id outside loops).")
    step_id: str
    kind: Literal["delay", "webhook", "subflow"]
    since: Timestamp
    resume_at: Timestamp | None
    child_run_id: UUID | None
    resume_url: Url | None = Field(
        description="A webhook wait's resume URL: POST to it, or open it in a browser for "
        "its approval page."
    )
    title: str | None
    description: str | None
    choices: list[str] | None
    form: Annotated[
        list[dict[str, Any]] | None,
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "array", "items": {"$ref": COMPONENT.format(model="FormField")}},
                    {"type": "null"},
                ]
            }
        ),
    ]


class RunDetail(Run):
    """A run with its trigger, output, reply, steps, child runs and what it waits for."""

    waits: list[PendingWait] = Field(description="Its pending waits (a PAUSED run's).")


# --- secrets and vars -----------------------------------------------------------------------


class Secret(View):
    """A secret: its name and times, never its value."""

    name: str
    created_at: Timestamp
    updated_at: Timestamp
    used_by: list[str] = Field(
        default_factory=list, description="The project's flows whose latest version uses it."
    )


class SecretList(View):
    secrets: list[Secret]


class Var(View):
    name: str
    value: str
    created_at: Timestamp
    updated_at: Timestamp


class VarList(View):
    vars: list[Var]
