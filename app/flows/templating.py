"""Templated values: Jinja2 expressions over a run's context, evaluated in a sandbox.

A string that is exactly one ``{{ expression }}`` (whitespace around it allowed) evaluates to
the expression's native value (object, list, number, boolean, null); text mixed with
expressions renders to a string, in which objects, lists, booleans and null are written as
JSON. Dicts and lists are rendered element by element (keys are left alone); other values
pass through.

Invariant: templates come from users and run inside the app and worker processes, so they
cannot reach private or dunder attributes, mutate the context, or build huge numbers or
strings with ``**`` and ``*``. Every failure — syntax, undefined name, sandbox refusal, an
exception in a filter — is a `TemplateError` naming the template.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_EXPONENT = 1024
MAX_REPEATED_LENGTH = 1_000_000

_SINGLE_EXPRESSION = re.compile(r"\s*\{\{[-+]?(?P<expression>.*?)[-+]?\}\}\s*", re.DOTALL)
_MARKERS = ("{{", "{%", "{#")

Renderer = Callable[[Mapping[str, Any]], Any]


class TemplateError(Exception):
    """A template that does not compile or evaluate; the run's step fails with this."""

    def __init__(self, template: str, message: str) -> None:
        super().__init__(f"template {template!r}: {message}")
        self.template = template
        self.message = message


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        # `trigger.body.items` means the body's "items" key, not dict.items: data first.
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _is_int(left) and _is_int(right):
            if right > MAX_EXPONENT and abs(left) > 1:
                raise SecurityError(f"exponent {right} is over the limit of {MAX_EXPONENT}")
        elif operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if (
                    isinstance(sequence, str | list | tuple)
                    and _is_int(times)
                    and len(sequence) * times > MAX_REPEATED_LENGTH
                ):
                    raise SecurityError(
                        f"repetition longer than the limit of {MAX_REPEATED_LENGTH} items"
                    )
        return super().call_binop(context, operator, left, right)


def _finalize(value: Any) -> Any:
    if value is None or isinstance(value, bool | dict | list | tuple):
        return json.dumps(_json_data(value), ensure_ascii=False)
    return value


_env = _Environment(undefined=jinja2.StrictUndefined, autoescape=False, finalize=_finalize)


def is_template(text: str) -> bool:
    """Whether `text` contains Jinja syntax (and so is rendered rather than used as is)."""
    return any(marker in text for marker in _MARKERS)


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """`value` with every string in it rendered against `context`."""
    if isinstance(value, str):
        return _evaluate(value, _compile(value), context) if is_template(value) else value
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context) for item in value]
    return value


def evaluate_condition(expression: str, context: Mapping[str, Any]) -> bool:
    """The truthiness of ``"{{ x > 1 }}"`` or of the bare expression ``"x > 1"``."""
    return bool(_evaluate(expression, _compile_condition(expression), context))


def check(text: str) -> None:
    """Raise TemplateError if `text` does not compile."""
    _compile(text)


def check_condition(expression: str) -> None:
    """Raise TemplateError if `expression` is not a single expression that compiles."""
    _compile_condition(expression)


def _evaluate(source: str, renderer: Renderer, context: Mapping[str, Any]) -> Any:
    try:
        return renderer(context)
    except jinja2.TemplateError as exc:
        raise TemplateError(source, exc.message or type(exc).__name__) from None
    except Exception as exc:
        raise TemplateError(source, f"{type(exc).__name__}: {exc}") from None


@functools.lru_cache(maxsize=4096)
def _compile(source: str) -> Renderer:
    try:
        expression = _single_expression(source)
        if expression is not None:
            return _expression(expression)
        return _env.from_string(source).render
    except jinja2.TemplateError as exc:
        raise TemplateError(source, exc.message or type(exc).__name__) from None


@functools.lru_cache(maxsize=1024)
def _compile_condition(source: str) -> Renderer:
    try:
        expression = _single_expression(source) if is_template(source) else source
        if expression is not None:
            return _expression(expression)
    except jinja2.TemplateError as exc:
        raise TemplateError(source, exc.message or type(exc).__name__) from None
    raise TemplateError(source, "a condition must be one expression, like 'x > 1' or '{{ x > 1 }}'")


def _expression(expression: str) -> Renderer:
    compiled = _env.compile_expression(expression, undefined_to_none=False)
    return lambda context: _json_data(compiled(context))


def _single_expression(source: str) -> str | None:
    """The expression in a template that is exactly one ``{{ expression }}``, else None."""
    template = _env.parse(source)  # raises on syntax errors; the regex alone can be fooled
    if len(template.body) != 1 or not isinstance(template.body[0], nodes.Output):
        return None
    parts = [
        node
        for node in template.body[0].nodes
        if not (isinstance(node, nodes.TemplateData) and not node.data.strip())
    ]
    if len(parts) != 1 or isinstance(parts[0], nodes.TemplateData):
        return None
    match = _SINGLE_EXPRESSION.fullmatch(source)
    return match["expression"] if match else None


def _json_data(value: Any) -> Any:
    """`value` as JSON data: iterables become lists; anything else not JSON is an error."""
    if isinstance(value, Undefined):
        str(value)  # a StrictUndefined raises its own error (undefined name, sandbox refusal)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        data = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"object key {key!r} is not a string")
            data[str(key)] = _json_data(item)
        return data
    if isinstance(value, list | tuple | range | Iterator):
        return [_json_data(item) for item in value]
    raise TypeError(f"values of type {type(value).__name__!r} are not JSON data")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
