"""Flow definitions: the JSON document a user deploys, validated before anything runs.

Invariant: a definition that `parse_flow` accepts is structurally sound — every field is
known and well typed, step ids are unique across the whole flow (nested steps included) and
usable as ``steps.<id>`` in templates, nesting and size stay within bounds, and every
template compiles. What is left for run time is only what needs data: rendering templates,
resolving the called flow, reaching the URL.
"""

from __future__ import annotations

import hashlib
import json
import re
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
from pydantic_core import ErrorDetails, PydanticCustomError

from app.flows import templating

FLOW_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
STEP_ID_PATTERN = r"^[a-z_][a-z0-9_]*$"
# The characters of `name[extra]>=1,<2`; the worker's installer checks the full grammar.
# An HTTP header name is a token (RFC 9110, 5.6.2).
HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$"
REQUIREMENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-\[\],<>=!~*+ ]*$"

MAX_STEPS = 200
MAX_NESTING_DEPTH = 8
MAX_CODE_CHARS = 64 * 1024
MAX_TEMPLATE_CHARS = 16 * 1024

_PATTERN_HINTS = {
    FLOW_NAME_PATTERN: "must be 1-63 lowercase letters, digits, '_' or '-', "
    "starting with a letter or digit",
    STEP_ID_PATTERN: "must be lowercase letters, digits and '_', not starting with a digit "
    "(so that it can be written steps.<id> in templates)",
    REQUIREMENT_PATTERN: "must be a requirement such as 'name', 'name==1.2' or "
    "'name[extra]>=1,<2' (no options, paths or URLs)",
    HEADER_NAME_PATTERN: "a header name must be 1-256 letters, digits or !#$%&'*+.^_`|~- "
    "(no spaces or separators)",
}

FlowName = Annotated[str, Field(pattern=FLOW_NAME_PATTERN)]
StepId = Annotated[str, Field(pattern=STEP_ID_PATTERN, max_length=64)]
Template = Annotated[str, Field(min_length=1, max_length=MAX_TEMPLATE_CHARS)]
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


class HttpStep(_Step):
    """An outbound HTTP request; its response becomes the step's output."""

    templated: ClassVar[tuple[str, ...]] = ("url", "headers", "body")

    type: Literal["http"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: Template
    headers: Headers = Field(default_factory=dict)
    body: JsonValue = None
    timeout_seconds: float | None = Field(default=None, gt=0, le=300)

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
    """Pauses until its resume URL is called; the request body becomes the output."""

    type: Literal["wait_for_webhook"]
    timeout_seconds: float | None = Field(default=None, gt=0, le=366 * 86_400)


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


class WebhookTrigger(_Model):
    """Runs the flow on ``POST /webhooks/{flow_id}``; with `secret`, requests must be signed."""

    type: Literal["webhook"] = "webhook"
    secret: str | None = Field(default=None, min_length=1, max_length=256)


class FlowDefinition(_Model):
    """An automation flow: a trigger and the steps each run executes, in order."""

    name: FlowName
    description: str | None = Field(default=None, max_length=2000)
    trigger: WebhookTrigger = Field(default_factory=WebhookTrigger)
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _shallow_enough(cls, data: Any) -> Any:
        # Checked on the raw document, before pydantic recurses into it.
        if isinstance(data, dict):
            too_deep = _too_deep(data.get("steps"), "steps", 1)
            if too_deep is not None:
                _fail([(too_deep, f"steps nest deeper than {MAX_NESTING_DEPTH} levels")])
        return data

    @field_validator("steps")
    @classmethod
    def _sound_structure(cls, steps: list[Step]) -> list[Step]:
        _fail(_structure_problems(steps))
        return steps

    def iter_steps(self) -> Iterator[tuple[str, Step]]:
        """Every step, nested ones included, in document order, with its path."""
        return _walk(self.steps, "steps")


BranchStep.model_rebuild()
LoopStep.model_rebuild()
FlowDefinition.model_rebuild()


class FlowDefinitionError(ValueError):
    """A definition that does not validate; `problems` is fit for an HTTP 422 body."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        self.problems = problems
        listed = "; ".join(
            f"{p['path']}: {p['message']}" if p["path"] else p["message"] for p in problems
        )
        super().__init__(f"invalid flow definition: {listed}")


def parse_flow(data: Any) -> FlowDefinition:
    """Validate a decoded JSON (or YAML) document; FlowDefinitionError lists every problem."""
    try:
        return FlowDefinition.model_validate(data)
    except ValidationError as exc:
        raise FlowDefinitionError(_problems(exc.errors())) from None


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


def _fail(problems: list[tuple[str, str]]) -> None:
    """Raise, for pydantic, every problem found by a whole-flow check (with its own path)."""
    if problems:
        raise PydanticCustomError(
            "flow_structure",
            "{summary}",
            {"summary": "; ".join(f"{p}: {m}" for p, m in problems), "problems": problems},
        )


def _too_deep(steps: Any, path: str, depth: int) -> str | None:
    if not isinstance(steps, list):
        return None
    for index, step in enumerate(steps):
        here = f"{path}[{index}]"
        if depth > MAX_NESTING_DEPTH:
            return here
        if isinstance(step, dict):
            for key in ("then", "else", "steps"):
                found = _too_deep(step.get(key), f"{here}.{key}", depth + 1)
                if found is not None:
                    return found
    return None


def _structure_problems(steps: list[Step]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    first_seen: dict[str, str] = {}
    count = 0
    for path, step in _walk(steps, "steps"):
        count += 1
        if step.id in first_seen:
            duplicate = f"duplicate step id '{step.id}' (also used at {first_seen[step.id]})"
            problems.append((f"{path}.id", duplicate))
        else:
            first_seen[step.id] = path
        problems.extend(_template_problems(step, path))
    if count > MAX_STEPS:
        problems.append(("steps", f"the flow has {count} steps; the limit is {MAX_STEPS}"))
    return problems


def _template_problems(step: _Step, path: str) -> Iterator[tuple[str, str]]:
    check = templating.check_condition if isinstance(step, BranchStep) else templating.check
    for name in step.templated:
        for where, text in _strings(getattr(step, name), f"{path}.{name}"):
            try:
                check(text)
            except templating.TemplateError as exc:
                yield where, exc.message


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, _join(path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def _problems(errors: list[ErrorDetails]) -> list[dict[str, str]]:
    problems: list[dict[str, str]] = []
    for error in errors:
        ctx = error.get("ctx", {})
        if error["type"] == "flow_structure":
            problems.extend({"path": p, "message": m} for p, m in ctx["problems"])
            continue
        problems.append({"path": _path(error["loc"]), "message": _message(error)})
    return problems


def _message(error: ErrorDetails) -> str:
    ctx = error.get("ctx", {})
    if error["type"] == "union_tag_invalid":
        return f"unknown step type {ctx['tag']!r}; expected one of: {', '.join(STEP_TYPES)}"
    if error["type"] == "union_tag_not_found":
        return f"a step needs a 'type', one of: {', '.join(STEP_TYPES)}"
    if error["type"] == "string_pattern_mismatch" and ctx.get("pattern") in _PATTERN_HINTS:
        return _PATTERN_HINTS[ctx["pattern"]]
    return error["msg"].removeprefix("Value error, ")


def _path(loc: tuple[int | str, ...]) -> str:
    """``('steps', 1, 'respond', 'status')`` → ``steps[1].status``.

    Pydantic puts the discriminator's tag after a step's index; it is not part of the
    document, so it is left out.
    """
    path = ""
    for position, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]":
            continue  # pydantic's marker for "the key itself", already in the path
        elif (
            position >= 2
            and isinstance(loc[position - 1], int)
            and loc[position - 2] in ("steps", "then", "else")
            and part in STEP_TYPES
        ):
            continue
        else:
            path = _join(path, part)
    return path


def _join(path: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"
