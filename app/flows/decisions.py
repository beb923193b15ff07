"""Approvals: what a `wait_for_webhook` step may ask a person (its choices and form), and
the decision they make, which becomes the step's output.

Invariant: a decision that `decide` returns names one of the step's choices, has a value
of the declared type for every field of its form (required ones given), no field the form
does not declare, and bounded text throughout; anything else is a `DecisionError` listing
every problem at once, by field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CHOICE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
FIELD_NAME_PATTERN = r"^[a-z_][a-z0-9_]{0,63}$"
DEFAULT_CHOICES = ("approve", "reject")
MAX_CHOICES = 10
MAX_FIELDS = 20
MAX_OPTIONS = 50
MAX_COMMENT_CHARS = 2000
MAX_NAME_CHARS = 200
MAX_TEXT_CHARS = {"string": 1000, "text": 10_000}
DECISION_KEYS = frozenset({"choice", "comment", "fields"})

Choice = Annotated[str, Field(pattern=CHOICE_PATTERN)]
FieldName = Annotated[str, Field(pattern=FIELD_NAME_PATTERN)]
Option = Annotated[str, Field(min_length=1, max_length=200)]
FieldType = Literal["string", "text", "number", "boolean", "select"]


class FormField(BaseModel):
    """One input of an approval page: `string` (a line), `text` (lines), `number`,
    `boolean` (a checkbox; required means it must be ticked) or `select` (one of
    `options`)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: FieldName
    type: FieldType = "string"
    label: str | None = Field(default=None, min_length=1, max_length=200)
    required: bool = False
    options: list[Option] | None = Field(default=None, min_length=1, max_length=MAX_OPTIONS)

    @model_validator(mode="after")
    def _options_for_a_select(self) -> FormField:
        if (self.type == "select") != (self.options is not None):
            raise ValueError("a select field has `options`, and only a select field")
        if self.options is not None and len(set(self.options)) != len(self.options):
            raise ValueError("the options must be distinct")
        return self

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()


def check_choices(choices: list[str]) -> list[str]:
    if len(set(choices)) != len(choices):
        raise ValueError("the choices must be distinct")
    return choices


def check_form(form: list[FormField]) -> list[FormField]:
    names = [field.name for field in form]
    if len(set(names)) != len(names):
        raise ValueError("the fields' names must be distinct")
    return form


def choice_label(choice: str) -> str:
    """``needs_changes`` → ``Needs changes``."""
    return choice.replace("_", " ").replace("-", " ").capitalize()


class DecisionError(ValueError):
    """A decision that does not fit the step; `problems` as ``{"path", "message"}``."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p['path']}: {p['message']}" for p in problems))


def is_decision(body: Any) -> bool:
    """Whether an API resume body is a decision (``{"choice", "comment"?, "fields"?}``)
    rather than a step output given whole."""
    return isinstance(body, dict) and "choice" in body and set(body) <= DECISION_KEYS


def decide(
    choices: list[str],
    form: list[FormField],
    *,
    choice: Any,
    comment: Any = None,
    fields: Any = None,
    by: Any = None,
    at: datetime,
    from_form: bool = False,
) -> dict[str, Any]:
    """The step's output for this decision: ``{"choice", "comment", "fields", "by", "at"}``.

    `from_form`: values came from an HTML form (text; an unticked checkbox is absent)."""
    problems: list[dict[str, str]] = []
    if choice not in choices:
        problems.append({"path": "choice", "message": f"must be one of {', '.join(choices)}"})
    comment = _text(comment, "comment", MAX_COMMENT_CHARS, problems)
    by = _text(by, "by", MAX_NAME_CHARS, problems)
    given = {} if fields is None else fields
    values: dict[str, Any] = {}
    if not isinstance(given, Mapping):
        problems.append({"path": "fields", "message": "must be an object of the form's fields"})
        given = {}
    known = {field.name for field in form}
    for name in given:
        if name not in known:
            problems.append({"path": f"fields.{name}", "message": "is not a field of this form"})
    for field in form:
        value, problem = _value(field, given.get(field.name), from_form=from_form)
        if problem:
            problems.append({"path": f"fields.{field.name}", "message": problem})
        values[field.name] = value
    if problems:
        raise DecisionError(problems)
    return {"choice": choice, "comment": comment, "fields": values, "by": by, "at": at.isoformat()}


def _text(value: Any, path: str, limit: int, problems: list[dict[str, str]]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append({"path": path, "message": "must be text"})
        return None
    if len(value) > limit:
        problems.append({"path": path, "message": f"must be at most {limit} characters"})
    return value.strip() or None


_TRUE = frozenset({"on", "true", "1", "yes"})
_FALSE = frozenset({"", "off", "false", "0", "no"})


def _value(field: FormField, raw: Any, *, from_form: bool) -> tuple[Any, str | None]:
    """The field's value and, when it is not acceptable, what is wrong."""
    if field.type == "boolean":
        if isinstance(raw, str) and from_form:
            raw = True if raw.lower() in _TRUE else False if raw.lower() in _FALSE else raw
        if raw is None:
            raw = False
        if not isinstance(raw, bool):
            return None, "must be true or false"
        return raw, "must be ticked" if field.required and not raw else None
    if isinstance(raw, str) and raw.strip() == "" and from_form:
        raw = None
    if raw is None:
        return None, "is required" if field.required else None
    if field.type == "number":
        return _number(raw, from_form=from_form)
    if not isinstance(raw, str):
        return None, "must be text"
    if field.type == "select":
        assert field.options is not None
        return (raw, None) if raw in field.options else (None, "must be one of the options")
    limit = MAX_TEXT_CHARS[field.type]
    if len(raw) > limit:
        return None, f"must be at most {limit} characters"
    if field.required and not raw.strip():
        return None, "is required"
    return raw, None


def _number(raw: Any, *, from_form: bool) -> tuple[Any, str | None]:
    if isinstance(raw, str) and from_form and len(raw) <= 40:
        try:
            raw = int(raw) if raw.strip().lstrip("+-").isdigit() else float(raw)
        except ValueError:
            return None, "must be a number"
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        return None, "must be a number"
    return raw, None
