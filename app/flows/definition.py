"""Flow definitions: the JSON document a user deploys, validated before anything runs.

Invariant: a definition that `parse_flow` accepts is structurally sound — every field is
known and well typed (the models here), step ids are usable as ``steps.<id>`` in templates,
and the flow as a whole passes `structure`'s checks (unique step ids, nesting and size
within bounds, templates that compile). What is left for run time is only what needs data:
rendering templates, resolving the called flow, reaching the URL.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from app.flows import decisions, structure, templating
from app.flows.problems import FlowDefinitionError, listed, raise_found
from app.flows.triggers import ScheduleTrigger, Trigger, WebhookTrigger

FLOW_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
STEP_ID_PATTERN = r"^[a-z_][a-z0-9_]*$"
# The characters of `name[extra]>=1,<2`; the worker's installer checks the full grammar.
# An HTTP header name is a token (RFC 9110, 5.6.2).
HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$"
REQUIREMENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-\[\],<>=!~*+ ]*$"

MAX_SCHEDULES = 20
MAX_CODE_CHARS = 64 * 1024
MAX_TEMPLATE_CHARS = 16 * 1024

_PATTERN_HINTS = {
    FLOW_NAME_PATTERN: "must be 1-63 lowercase letters, digits, '_' or '-', "
    "starting with a letter or digit",
    STEP_ID_PATTERN: "must be lowercase letters, digits and '_', not starting with a digit "
    "(so that it can be written steps.<id> in templates)",
    REQUIREMENT_PATTERN: "must be a requirement such as 'name', 'name==1.2' or "
    "'name[extra]>=1,<2' (no options, paths or URLs)",
    decisions.CHOICE_PATTERN: "must be 1-40 lowercase letters, digits, '_' or '-', starting "
    "with a letter or digit",
    decisions.FIELD_NAME_PATTERN: "must be lowercase letters, digits and '_', not starting "
    "with a digit",
    HEADER_NAME_PATTERN: "a header name must be 1-256 letters, digits or !#$%&'*+.^_`|~- "
    "(no spaces or separators)",
}

FlowName = Annotated[str, Field(pattern=FLOW_NAME_PATTERN)]
StepId = Annotated[str, Field(pattern=STEP_ID_PATTERN, max_length=64)]
Template = Annotated[str, Field(min_length=1, max_length=MAX_TEMPLATE_CHARS)]
SecretName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
Requirement = Annotated[str, Field(pattern=REQUIREMENT_PATTERN, max_length=200)]
Headers = dict[Annotated[str, Field(pattern=HEADER_NAME_PATTERN)], Template]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Retry(_Model):
    """Re-run a failed step, waiting `backoff_seconds` before each new attempt."""

    max_attempts: int = Field(default=3, ge=1, le=100)
    backoff_seconds: float = Field(default=1.0, ge=0, le=86_400)


class _Step(_Model):
    # Fields whose strings are Jinja templates, rendered just before the step runs.
    templated: ClassVar[tuple[str, ...]] = ()

    id: StepId
    retry: Retry | None = None
    continue_on_error: bool = False


class CodeStep(_Step):
    """Runs ``def run(input, ctx)`` in the sandbox; `input` defaults to the whole context."""

    templated: ClassVar[tuple[str, ...]] = ("input",)

    type: Literal["code"]
    code: str = Field(min_length=1, max_length=MAX_CODE_CHARS)
    input: JsonValue = None
    requirements: list[Requirement] = Field(default_factory=list, max_length=50)
    timeout_seconds: float | None = Field(default=None, gt=0, le=3600)
    secrets: list[SecretName] = Field(default_factory=list, max_length=50)
    """The project's secrets the code reads from ``ctx["secrets"]`` (sent with the step)."""
    network: bool | None = None
    """Reach public addresses (through the worker's guarded egress proxy); None: the flow's
    `network`."""


class HttpStep(_Step):
    """An outbound HTTP request; its response becomes the step's output."""

    templated: ClassVar[tuple[str, ...]] = ("url", "headers", "body")

    type: Literal["http"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: Template
    headers: Headers = Field(default_factory=dict)
    body: JsonValue = None
    timeout_seconds: float | None = Field(default=None, gt=0, le=300)
    idempotency_key: bool = False
    """Send `Idempotency-Key: <the step's key>` (the same for every attempt of this step
    of this run), unless `headers` names one."""

    @field_validator("url")
    @classmethod
    def _absolute_http_url(cls, url: str) -> str:
        if not templating.is_template(url) and not url.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https:// (or be a template)")
        return url


class BranchStep(_Step):
    """Runs `then` when `condition` is truthy, else `else`."""

    templated: ClassVar[tuple[str, ...]] = ("condition",)

    type: Literal["branch"]
    condition: Template
    then: list[Step]
    else_: list[Step] = Field(default_factory=list, alias="else")


class LoopStep(_Step):
    """Runs `steps` once per element of `items`, collecting each iteration's output."""

    templated: ClassVar[tuple[str, ...]] = ("items",)

    type: Literal["loop"]
    items: Template | list[JsonValue]
    steps: list[Step] = Field(min_length=1)

    @field_validator("items", mode="before")
    @classmethod
    def _list_or_template(cls, items: Any) -> Any:
        if not isinstance(items, str | list):
            raise ValueError("must be a list, or a template that renders to one")
        return items


class DelayStep(_Step):
    """Pauses the run for `seconds`, or until `until` (an ISO 8601 time with a zone)."""

    templated: ClassVar[tuple[str, ...]] = ("until",)

    type: Literal["delay"]
    seconds: float | None = Field(default=None, ge=0, le=366 * 86_400)
    until: Template | None = None

    @field_validator("until")
    @classmethod
    def _aware_timestamp(cls, until: str | None) -> str | None:
        if until is None or templating.is_template(until):
            return until
        try:
            moment = datetime.fromisoformat(until)
        except ValueError:
            raise ValueError("must be an ISO 8601 date and time (or a template)") from None
        if moment.tzinfo is None:
            raise ValueError("must include a time zone, e.g. 2030-01-01T09:00:00Z")
        return until

    @model_validator(mode="after")
    def _one_of_seconds_or_until(self) -> DelayStep:
        if (self.seconds is None) == (self.until is None):
            raise ValueError("give exactly one of 'seconds' or 'until'")
        return self


class WaitForWebhookStep(_Step):
    """Pauses until its resume URL is called; the request body becomes the output. Opened
    in a browser, the URL is an approval page: `title`, `description`, a button per
    choice and the `form`; the decision made there is the output."""

    type: Literal["wait_for_webhook"]
    timeout_seconds: float | None = Field(default=None, gt=0, le=366 * 86_400)
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    choices: list[decisions.Choice] = Field(
        default=list(decisions.DEFAULT_CHOICES), min_length=1, max_length=decisions.MAX_CHOICES
    )
    form: list[decisions.FormField] = Field(default_factory=list, max_length=decisions.MAX_FIELDS)

    _distinct_choices = field_validator("choices")(decisions.check_choices)
    _distinct_fields = field_validator("form")(decisions.check_form)


class CallFlowStep(_Step):
    """Starts a run of `flow` with `input` as its trigger body; by default waits for it."""

    templated: ClassVar[tuple[str, ...]] = ("input",)

    type: Literal["call_flow"]
    flow: FlowName
    input: JsonValue = None
    wait: bool = True


class RespondStep(_Step):
    """Sets the reply for a sync webhook caller or a parent flow."""

    templated: ClassVar[tuple[str, ...]] = ("headers", "body")

    type: Literal["respond"]
    status: int = Field(default=200, ge=200, le=599)
    headers: Headers = Field(default_factory=dict)
    body: JsonValue = None


Step = Annotated[
    CodeStep
    | HttpStep
    | BranchStep
    | LoopStep
    | DelayStep
    | WaitForWebhookStep
    | CallFlowStep
    | RespondStep,
    Field(discriminator="type"),
]
STEP_TYPES = (
    "code",
    "http",
    "branch",
    "loop",
    "delay",
    "wait_for_webhook",
    "call_flow",
    "respond",
)


class FlowDefinition(_Model):
    """An automation flow: its trigger (or triggers) and the steps each run executes, in
    order."""

    name: FlowName
    description: str | None = Field(default=None, max_length=2000)
    trigger: Trigger | list[Trigger] = Field(default_factory=WebhookTrigger)
    steps: list[Step] = Field(min_length=1)
    network: bool = False
    """The default `network` of its code steps."""
    on_failure: FlowName | None = None
    """The flow a run of this one starts when it ends FAILED, TIMEOUT or INTERNAL_ERROR."""

    @field_validator("trigger", mode="before")
    @classmethod
    def _webhook_by_default(cls, value: Any) -> Any:
        """A trigger without a `type` is a webhook (as every trigger was at first)."""

        def typed(trigger: Any) -> Any:
            return {"type": "webhook", **trigger} if isinstance(trigger, dict) else trigger

        return [typed(t) for t in value] if isinstance(value, list) else typed(value)

    @field_validator("trigger")
    @classmethod
    def _few_distinct_schedules(cls, trigger: Any) -> Any:
        listed = trigger if isinstance(trigger, list) else [trigger]
        problems: list[tuple[str, str]] = []
        first: dict[str, int] = {}
        for index, schedule in enumerate(listed):
            if not isinstance(schedule, ScheduleTrigger):
                continue
            if len(first) == MAX_SCHEDULES:
                problems.append((f"trigger[{index}]", f"at most {MAX_SCHEDULES} schedules"))
                break
            if schedule.key in first:
                problems.append(
                    (f"trigger[{index}]", f"the same schedule as trigger[{first[schedule.key]}]")
                )
            first.setdefault(schedule.key, index)
        raise_found(problems)
        return trigger

    @property
    def triggers(self) -> list[WebhookTrigger | ScheduleTrigger]:
        return list(self.trigger) if isinstance(self.trigger, list) else [self.trigger]

    @property
    def webhook(self) -> WebhookTrigger | None:
        """The webhook trigger (a flow has at most one), None when only scheduled."""
        found = [t for t in self.triggers if isinstance(t, WebhookTrigger)]
        if not isinstance(self.trigger, list) or found:
            return found[0] if found else None
        return None

    @model_validator(mode="before")
    @classmethod
    def _shallow_enough(cls, data: Any) -> Any:
        # Checked on the raw document, before pydantic recurses into it.
        if isinstance(data, dict):
            structure.check_depth(data.get("steps"))
        return data

    @field_validator("steps")
    @classmethod
    def _sound_structure(cls, steps: list[Step]) -> list[Step]:
        structure.check(_walk(steps, "steps"))
        return steps

    def iter_steps(self) -> Iterator[tuple[str, Step]]:
        """Every step, nested ones included, in document order, with its path."""
        return _walk(self.steps, "steps")


BranchStep.model_rebuild()
LoopStep.model_rebuild()
FlowDefinition.model_rebuild()


def parse_flow(data: Any) -> FlowDefinition:
    """Validate a decoded JSON (or YAML) document; FlowDefinitionError lists every problem."""
    try:
        return FlowDefinition.model_validate(data)
    except ValidationError as exc:
        errors = _trigger_errors(exc.errors(), data)
        problems = listed(errors, step_types=STEP_TYPES, hints=_PATTERN_HINTS)
        raise FlowDefinitionError(problems) from None


def _trigger_errors(errors: list[ErrorDetails], data: Any) -> list[ErrorDetails]:
    """Errors with the trigger's in document terms: of the two forms a trigger may take (one
    or a list), only the errors of the form the document used, without pydantic's labels of
    the union's members and tags (``trigger[0].secret``, not
    ``trigger.list[tagged-union[…]].0.webhook.secret``)."""
    given = data.get("trigger") if isinstance(data, dict) else None
    form = "list[" if isinstance(given, list) else "tagged-union["
    kept: list[ErrorDetails] = []
    for error in errors:
        loc = error["loc"]
        if len(loc) < 2 or loc[0] != "trigger" or not isinstance(loc[1], str):
            kept.append(error)
            continue
        if not loc[1].startswith(form):
            continue
        rest = [part for part in loc[2:] if not (isinstance(part, str) and "[" in part)]
        if rest and rest[0] in ("webhook", "schedule") and form == "tagged-union[":
            rest = rest[1:]
        elif len(rest) > 1 and isinstance(rest[0], int) and rest[1] in ("webhook", "schedule"):
            rest = [rest[0], *rest[2:]]
        fixed: ErrorDetails = {**error, "loc": ("trigger", *rest)}
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            fixed["type"] = "trigger_type"
            fixed["msg"] = "a trigger's type is webhook (the default) or schedule"
        kept.append(fixed)
    return kept


def flow_json_schema() -> dict[str, Any]:
    """The published JSON Schema of a flow definition (draft 2020-12)."""
    schema = FlowDefinition.model_json_schema(by_alias=True)
    del schema["title"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Sluice flow definition",
        **schema,
    }


def content_hash(definition: FlowDefinition) -> str:
    """sha256 (hex) of the canonical JSON form; equal for documents that mean the same."""
    canonical = json.dumps(
        definition.model_dump(mode="json", by_alias=True),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _walk(steps: Sequence[Step], path: str) -> Iterator[tuple[str, Step]]:
    for index, step in enumerate(steps):
        here = f"{path}[{index}]"
        yield here, step
        if isinstance(step, BranchStep):
            yield from _walk(step.then, f"{here}.then")
            yield from _walk(step.else_, f"{here}.else")
        elif isinstance(step, LoopStep):
            yield from _walk(step.steps, f"{here}.steps")
