"""Templates: native values for one expression, text otherwise, and a sandbox around both."""

from __future__ import annotations

from typing import Any

import pytest

from app.flows import TemplateError, evaluate_condition, render, templating

CONTEXT: dict[str, Any] = {
    "trigger": {"body": {"who": "ada", "n": 3, "ok": True, "tags": ["a", "b"], "none": None}},
    "steps": {"compute": {"output": {"hello": "ada", "total": 2.5}}},
    "rows": [{"id": 1}, {"id": 2}],
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ trigger.body.n }}", 3),
        ("{{ steps.compute.output.total }}", 2.5),
        ("{{ trigger.body.ok }}", True),
        ("{{ trigger.body.none }}", None),
        ("{{ trigger.body.tags }}", ["a", "b"]),
        ("{{ steps.compute.output }}", {"hello": "ada", "total": 2.5}),
        ("{{ trigger.body.who }}", "ada"),
        ("{{ trigger.body.n * 2 + 1 }}", 7),
        ("{{ {'who': trigger.body.who, 'n': [trigger.body.n]} }}", {"who": "ada", "n": [3]}),
        ("  {{ trigger.body.n }}\n", 3),
        ("{{- trigger.body.n -}}", 3),
        ("{{ trigger.body.tags | length }}", 2),
        ("{{ rows | map(attribute='id') }}", [1, 2]),
        ("{{ trigger.body.who | upper }}", "ADA"),
        ("{{ '}}' }}", "}}"),
    ],
)
def test_a_single_expression_keeps_its_native_type(template: str, expected: Any) -> None:
    result = render(template, CONTEXT)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello {{ trigger.body.who }}!", "Hello ada!"),
        ("{{ trigger.body.n }}{{ trigger.body.n }}", "33"),
        ("n={{ trigger.body.n }}", "n=3"),
        ("{{ trigger.body.ok }} {{ trigger.body.none }}", "true null"),
        ("tags: {{ trigger.body.tags }}", 'tags: ["a", "b"]'),
        ("{% for t in trigger.body.tags %}{{ t }};{% endfor %}", "a;b;"),
        ("{# note #}{{ trigger.body.n }}", "3"),
        ("no template here", "no template here"),
        ("", ""),
    ],
)
def test_text_mixed_with_expressions_renders_to_a_string(template: str, expected: str) -> None:
    assert render(template, CONTEXT) == expected


def test_structures_are_rendered_recursively_and_keys_left_alone() -> None:
    value = {
        "{{ trigger.body.who }}": "{{ trigger.body.who }}",
        "list": [
            "{{ trigger.body.n }}",
            "#{{ trigger.body.n }}",
            {"deep": "{{ trigger.body.ok }}"},
        ],
        "number": 7,
        "flag": False,
        "nothing": None,
    }
    assert render(value, CONTEXT) == {
        "{{ trigger.body.who }}": "ada",
        "list": [3, "#3", {"deep": True}],
        "number": 7,
        "flag": False,
        "nothing": None,
    }


@pytest.mark.parametrize("value", [0, 1.5, True, False, None])
def test_non_strings_pass_through(value: Any) -> None:
    assert render(value, CONTEXT) is value


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ steps.nope.output }}", "'dict object' has no attribute 'nope'"),
        ("{{ missing }}", "'missing' is undefined"),
        ("Hello {{ missing }}", "'missing' is undefined"),
        ("{{ [missing] }}", "'missing' is undefined"),
        ("{{ trigger.body.who", "unexpected end of template"),
        ("{% if %}", "Expected an expression"),
        ("{{ 1 / 0 }}", "ZeroDivisionError: division by zero"),
        ("{{ trigger.body.who | round }}", "TypeError"),
        ("{{ trigger.body.who | nosuchfilter }}", "No filter named 'nosuchfilter'"),
    ],
)
def test_errors_name_the_template_and_jinjas_message(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render({"body": [template]}, CONTEXT)
    assert caught.value.template == template
    assert message in caught.value.message
    assert str(caught.value) == f"template {template!r}: {caught.value.message}"


def test_the_issue_example_error_message() -> None:
    with pytest.raises(TemplateError) as caught:
        render("{{ steps.nope.output }}", CONTEXT)
    assert str(caught.value) == (
        "template '{{ steps.nope.output }}': 'dict object' has no attribute 'nope'"
    )


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ ''.__class__.__mro__ }}", "access to attribute '__class__' of 'str' object is unsafe"),
        ("x{{ ''.__class__ }}", "unsafe"),
        ("{{ rows.__len__() }}", "unsafe"),
        ("{{ '{0.__class__}'.format(rows) }}", "unsafe"),
        ("{{ rows.append(3) }}", "access to attribute 'append' of 'list' object is unsafe"),
        ("{{ steps.compute.output.update(x=1) }}", "unsafe"),
        ("{{ 2 ** 100000 }}", "exponent 100000 is over the limit"),
        ("{{ 'x' * 10 ** 8 }}", "repetition"),
        ("{{ range(10 ** 9) | list }}", "Range too big"),
    ],
)
def test_the_sandbox_refuses(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match="template ") as caught:
        render(template, CONTEXT)
    assert message in caught.value.message
    assert CONTEXT["rows"] == [{"id": 1}, {"id": 2}]


def test_private_attributes_are_hidden() -> None:
    class Thing:
        _secret = "s"
        public = "p"

    assert render("{{ thing.public }}", {"thing": Thing()}) == "p"
    with pytest.raises(TemplateError, match="_secret"):
        render("{{ thing._secret }}", {"thing": Thing()})


def test_a_native_value_must_be_json_data() -> None:
    with pytest.raises(TemplateError, match="'object' are not JSON data"):
        render("{{ thing }}", {"thing": object()})


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("{{ trigger.body.n > 1 }}", True),
        ("trigger.body.n > 5", False),
        ("  trigger.body.tags  ", True),
        ("trigger.body.none", False),
        ("{{ trigger.body.who == 'ada' and trigger.body.ok }}", True),
        ("trigger.body.tags | length == 0", False),
        ("[]", False),
        ("'false'", True),
    ],
)
def test_conditions_use_python_truthiness(condition: str, expected: bool) -> None:
    assert evaluate_condition(condition, CONTEXT) is expected


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("{{ a }} and {{ b }}", "a condition must be one expression"),
        ("x >", "unexpected 'end of template'"),
        ("nope > 1", "'nope' is undefined"),
        ("().__class__", "unsafe"),
    ],
)
def test_bad_conditions_raise(condition: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        evaluate_condition(condition, CONTEXT)
    assert caught.value.template == condition
    assert message in caught.value.message


def test_compiled_templates_are_cached() -> None:
    source = "{{ trigger.body.n + 100 }}"
    before = templating.compile_template.cache_info().hits
    assert render([source, source], CONTEXT) == [103, 103]
    assert templating.compile_template.cache_info().hits == before + 1


def test_check_compiles_without_rendering() -> None:
    templating.check("{{ anything.at.all }}")
    templating.check_condition("anything > 1")
    with pytest.raises(TemplateError, match="unexpected"):
        templating.check("{{ a }")
