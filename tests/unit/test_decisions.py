"""Approval decisions: each form field's type, required fields, unknown fields, choices and
bounds; and the choices and form in the published flow schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.flows import flow_json_schema, parse_flow
from app.flows.decisions import DecisionError, FormField, decide, is_decision

AT = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)
FORM = [
    FormField(name="amount", type="number", required=True),
    FormField(name="reason", type="select", options=["damaged", "late"]),
    FormField(name="notify", type="boolean"),
    FormField(name="agree", type="boolean", required=True),
    FormField(name="title", type="string"),
    FormField(name="note", type="text", required=True),
]
GOOD = {"amount": 4, "reason": "late", "agree": True, "note": "ok"}


def problems(**given: Any) -> dict[str, str]:
    with pytest.raises(DecisionError) as raised:
        decide(["approve", "reject"], FORM, at=AT, **given)
    return {problem["path"]: problem["message"] for problem in raised.value.problems}


def test_a_decision_is_the_choice_the_fields_who_and_when() -> None:
    made = decide(
        ["approve", "reject"],
        FORM,
        choice="approve",
        comment=" fine ",
        fields=GOOD,
        by="Ann",
        at=AT,
    )
    assert made == {
        "choice": "approve",
        "comment": "fine",
        "fields": {**GOOD, "notify": False, "title": None},
        "by": "Ann",
        "at": "2030-01-01T10:00:00+00:00",
    }


def test_form_text_is_read_as_each_fields_type() -> None:
    fields = {"amount": "-2.5", "reason": "damaged", "notify": "on", "agree": "on", "title": ""}
    made = decide(
        ["approve"], FORM, choice="approve", fields={**fields, "note": "x"}, at=AT, from_form=True
    )
    assert made["fields"] == {
        "amount": -2.5,
        "reason": "damaged",
        "notify": True,
        "agree": True,
        "title": None,
        "note": "x",
    }
    assert (
        decide(["a"], FORM, choice="a", fields={**GOOD, "amount": "12"}, at=AT, from_form=True)[
            "fields"
        ]["amount"]
        == 12
    )


def test_every_problem_is_listed_by_field() -> None:
    found = problems(
        choice="maybe",
        comment="x" * 2001,
        fields={"amount": "4", "reason": "bored", "notify": "yes", "agree": False, "extra": 1},
    )
    assert found == {
        "choice": "must be one of approve, reject",
        "comment": "must be at most 2000 characters",
        "fields.extra": "is not a field of this form",
        "fields.amount": "must be a number",
        "fields.reason": "must be one of the options",
        "fields.notify": "must be true or false",
        "fields.agree": "must be ticked",
        "fields.note": "is required",
    }
    assert problems(choice="approve", fields=[1])["fields"].startswith("must be an object")
    bad_numbers = [float("nan"), float("inf"), True, "1e999"]
    for number in bad_numbers:
        found = problems(choice="approve", fields={**GOOD, "amount": number}, from_form=True)
        assert found == {"fields.amount": "must be a number"}, number
    long = problems(choice="approve", fields={**GOOD, "title": "x" * 1001})
    assert long == {"fields.title": "must be at most 1000 characters"}


def test_only_a_choice_with_decision_keys_is_a_decision() -> None:
    assert is_decision({"choice": "approve"})
    assert is_decision({"choice": "approve", "comment": "c", "fields": {}})
    assert not is_decision({"choice": "approve", "extra": 1})
    assert not is_decision({"comment": "c"})
    assert not is_decision(["choice"])


def test_choices_and_forms_are_in_the_flow_schema() -> None:
    wait = flow_json_schema()["$defs"]["WaitForWebhookStep"]["properties"]
    assert wait["choices"]["default"] == ["approve", "reject"]
    assert wait["choices"]["maxItems"] == 10
    assert wait["form"]["maxItems"] == 20
    field = flow_json_schema()["$defs"]["FormField"]["properties"]
    assert field["type"]["enum"] == ["string", "text", "number", "boolean", "select"]
    step = {"id": "w", "type": "wait_for_webhook"}
    assert parse_flow({"name": "f", "steps": [step]}).steps[0].choices == ["approve", "reject"]  # type: ignore[union-attr]
