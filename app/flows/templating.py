"""Templated values: Jinja2 expressions over a run's context, evaluated in a sandbox.

A string that is exactly one ``{{ expression }}`` (whitespace around it allowed) evaluates to
the expression's native value (object, list, number, boolean, null); text mixed with
expressions renders to a string, in which objects, lists, booleans and null are written as
JSON. Dicts and lists are rendered element by element (keys are left alone); other values
pass through.

Invariant: templates come from users, so they cannot reach private or dunder attributes,
mutate the context, or build huge numbers, strings or lists with ``**``, ``*`` and ``+``, and
a text template stops once its output is over `max_chars`. That bounds what a template
*builds*, not how long it runs: a `Compiled` template is `inline` only when it is a bounded
projection of its inputs (`app.flows.inline`); the worker renders every other template in
its render processes, under a CPU and memory budget (`worker.templates`). Every failure —
syntax, undefined name, sandbox refusal, an exception in a filter, a limit — is a
`TemplateError` naming the template; a `TemplateLimit` when a limit was hit.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.parser import Parser
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.flows.inline import Needs, is_inline, needs_of

MAX_EXPONENT = 1024
MAX_REPEATED_LENGTH = 1_000_000
MAX_INT_BITS = 64 * 1024
"""An integer result of ``*`` or ``**`` may have at most this many bits (about 19,700
digits): a power of a power is refused before it is computed."""
DEFAULT_MAX_CHARS = 1024 * 1024

_SINGLE_EXPRESSION = re.compile(r"\s*\{\{[-+]?(?P<expression>.*?)[-+]?\}\}\s*", re.DOTALL)
_MARKERS = ("{{", "{%", "{#")

Renderer = Callable[[Mapping[str, Any], int], Any]
"""Renders against a context, with at most so many characters of text output."""


class TemplateError(Exception):
    """A template that does not compile or evaluate; the run's step fails with this."""

    def __init__(self, template: str, message: str) -> None:
        shown = template if len(template) <= 120 else template[:119] + "…"
        super().__init__(f"template {shown!r}: {message}")
        self.template = template
        self.message = message


class TemplateLimit(TemplateError):
    """A render over one of its limits (output size, CPU time, memory)."""


class _OutputLimit(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"renders more than {limit:,} characters")


@dataclasses.dataclass(frozen=True)
class Compiled:
    """A compiled template: what it renders with, and what it needs."""

    source: str
    renderer: Renderer
    inline: bool
    """A bounded projection of its inputs: cheap enough to render in the process asking."""
    needs: Needs
    """The context it reads (what a render process is sent)."""

    def evaluate(self, context: Mapping[str, Any], max_chars: int = DEFAULT_MAX_CHARS) -> Any:
        """The rendered value; text output stops at `max_chars`. Raises TemplateError."""
        try:
            return self.renderer(context, max_chars)
        except _OutputLimit as exc:
            raise TemplateLimit(self.source, str(exc)) from None
        except MemoryError:
            raise
        except jinja2.TemplateError as exc:
            raise TemplateError(self.source, exc.message or type(exc).__name__) from None
        except Exception as exc:
            raise TemplateError(self.source, f"{type(exc).__name__}: {exc}") from None


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        # `trigger.body.items` means the body's "items" key, not dict.items: data first.
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _is_int(left) and _is_int(right) and abs(left) > 1:
            if right > MAX_EXPONENT:
                raise SecurityError(f"exponent {right} is over the limit of {MAX_EXPONENT}")
            if left.bit_length() * right > MAX_INT_BITS:
                raise SecurityError(f"a power with more than {MAX_INT_BITS} bits")
        elif operator == "*":
            if (
                _is_int(left)
                and _is_int(right)
                and left.bit_length() + right.bit_length() > MAX_INT_BITS
            ):
                raise SecurityError(f"a product with more than {MAX_INT_BITS} bits")
            for sequence, times in ((left, right), (right, left)):
                if (
                    isinstance(sequence, str | list | tuple)
                    and _is_int(times)
                    and len(sequence) * times > MAX_REPEATED_LENGTH
                ):
                    raise SecurityError(
                        f"repetition longer than the limit of {MAX_REPEATED_LENGTH} items"
                    )
        elif (
            operator == "+"
            and isinstance(left, str | list | tuple)
            and isinstance(right, str | list | tuple)
            and len(left) + len(right) > MAX_REPEATED_LENGTH
        ):
            raise SecurityError(f"a sum longer than the limit of {MAX_REPEATED_LENGTH} items")
        return super().call_binop(context, operator, left, right)


def _finalize(value: Any) -> Any:
    if value is None or isinstance(value, bool | dict | list | tuple):
        return json.dumps(_json_data(value), ensure_ascii=False)
    return value


_env = _Environment(undefined=jinja2.StrictUndefined, autoescape=False, finalize=_finalize)


def is_template(text: str) -> bool:
    """Whether `text` contains Jinja syntax (and so is rendered rather than used as is)."""
    return any(marker in text for marker in _MARKERS)


def render(value: Any, context: Mapping[str, Any], max_chars: int = DEFAULT_MAX_CHARS) -> Any:
    """`value` with every string in it rendered against `context`, in this process."""
    if isinstance(value, str):
        return compile_template(value).evaluate(context, max_chars) if is_template(value) else value
    if isinstance(value, dict):
        return {key: render(item, context, max_chars) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context, max_chars) for item in value]
    return value


def evaluate_condition(expression: str, context: Mapping[str, Any]) -> bool:
    """The truthiness of ``"{{ x > 1 }}"`` or of the bare expression ``"x > 1"``."""
    return bool(compile_condition(expression).evaluate(context))


def check(text: str) -> None:
    """Raise TemplateError if `text` does not compile."""
    compile_template(text)


def check_condition(expression: str) -> None:
    """Raise TemplateError if `expression` is not a single expression that compiles."""
    compile_condition(expression)


@functools.lru_cache(maxsize=4096)
def compile_template(source: str) -> Compiled:
    """`source` compiled: one expression to its native value, anything else to text."""
    try:
        expression = _single_expression(source)
        if expression is not None:
            return _compiled_expression(source, expression)
        template = _env.from_string(source)
        tree = _env.parse(source)
    except jinja2.TemplateError as exc:
        raise TemplateError(source, exc.message or type(exc).__name__) from None
    return Compiled(source, _text(template), is_inline(tree), needs_of(tree))


@functools.lru_cache(maxsize=1024)
def compile_condition(source: str) -> Compiled:
    """`source` (``x > 1`` or ``{{ x > 1 }}``) compiled to one expression."""
    try:
        expression = _single_expression(source) if is_template(source) else source
        if expression is not None:
            return _compiled_expression(source, expression)
    except jinja2.TemplateError as exc:
        raise TemplateError(source, exc.message or type(exc).__name__) from None
    raise TemplateError(source, "a condition must be one expression, like 'x > 1' or '{{ x > 1 }}'")


def _compiled_expression(source: str, expression: str) -> Compiled:
    compiled = _env.compile_expression(expression, undefined_to_none=False)
    parser = Parser(_env, expression, state="variable")
    tree = nodes.Template([nodes.Output([parser.parse_expression()])])
    return Compiled(
        source,
        lambda context, _max_chars: _json_data(compiled(context)),
        is_inline(tree),
        needs_of(tree),
    )


def _text(template: jinja2.Template) -> Renderer:
    def render(context: Mapping[str, Any], max_chars: int) -> str:
        pieces, size = [], 0
        for piece in template.generate(context):
            size += len(piece)
            if size > max_chars:
                raise _OutputLimit(max_chars)
            pieces.append(piece)
        return "".join(pieces)

    return render


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
