"""Property-based: whatever template a user writes, its render is bounded.

Templates are drawn from a grammar over the whole Jinja surface the sandbox allows —
string-growing filters with any argument, ``~``, ``+``, ``*`` and ``**``, ``format``,
comprehension-like filters, nested loops, ``namespace`` assignments, recursive macros —
and rendered as the worker renders them: inline (`app.flows.inline`) in this process, any
other in a render process. Each render ends within its wall time with a value under the
output limit or an error; an inline one never takes long enough to stall an event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.flows import templating
from worker.templates import RenderBudget, Rendered, TemplateRenderer

MAX_CHARS = 64 * 1024
INLINE_SECONDS = 0.25
"""An inline render this long would stall the worker's loop (a bomb takes seconds)."""

CONTEXT: dict[str, Any] = {
    "trigger": {"body": {"text": "ab" * 20_000, "n": 7, "items": list(range(300))}},
    "steps": {"a": {"output": {"s": "x" * 50_000, "l": ["y" * 100] * 200}}},
    "item": "z",
    "index": 3,
}

NUMBERS = st.sampled_from(["0", "1", "2", "3", "7", "64", "1024", "100000", "300000000", "-5"])
STRINGS = st.sampled_from(["'a'", "'ab'", "'%s'", "'%0300000d'", "''", "'x,y'"])
NAMES = st.sampled_from(
    [
        "trigger.body.text",
        "trigger.body.n",
        "trigger.body.items",
        "steps.a.output.s",
        "steps.a.output.l",
        "item",
        "index",
        "range(3000)",
        "range(100000)",
        "ns.v",
    ]
)
FILTERS = st.sampled_from(
    [
        "center({n})", "format({n})", "replace('a', {s})", "indent({n})", "wordwrap({n})",
        "truncate({n})", "join({s})", "list", "string", "tojson", "upper", "title", "trim",
        "length", "sum", "sort", "reverse", "unique", "batch({n})", "slice({n})",
        "map('string')", "select", "reject", "dictsort", "urlencode", "escape",
        "default({s})", "first", "last", "int", "abs", "round", "max", "min", "wordcount",
        "striptags", "capitalize", "items", "pprint", "filesizeformat", "xmlattr", "lower",
    ]
)  # fmt: skip
OPERATORS = st.sampled_from([" ~ ", " + ", " * ", " ** ", " // ", " % ", " == ", " and ", " in "])


@st.composite
def filtered(draw: st.DrawFn, inner: st.SearchStrategy[str]) -> str:
    spec = draw(FILTERS).format(n=draw(NUMBERS), s=draw(STRINGS))
    return f"({draw(inner)})|{spec}"


def expressions() -> st.SearchStrategy[str]:
    atoms = st.one_of(NUMBERS, STRINGS, NAMES)
    return st.recursive(
        atoms,
        lambda inner: st.one_of(
            st.tuples(inner, OPERATORS, inner).map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
            filtered(inner),
            st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
            st.tuples(inner, inner).map(lambda t: f"[{t[0]}, {t[1]}]"),
        ),
        max_leaves=6,
    )


def templates() -> st.SearchStrategy[str]:
    expression = expressions()
    return st.recursive(
        expression.map(lambda e: "{{ " + e + " }}") | st.just("text "),
        lambda body: st.one_of(
            st.lists(body, min_size=2, max_size=3).map("".join),
            st.tuples(NAMES, body).map(lambda t: f"{{% for i in {t[0]} %}}{t[1]}{{% endfor %}}"),
            st.tuples(expression, body).map(lambda t: f"{{% if {t[0]} %}}{t[1]}{{% endif %}}"),
            st.tuples(expression, body).map(
                lambda t: f"{{% set ns.v = {t[0]} %}}{t[1]}{{% set ns.v = ns.v ~ ns.v %}}{t[1]}"
            ),
            body.map(
                lambda b: (
                    "{% macro f(k) %}" + b + "{% if k > 0 %}{{ f(k - 1) }}{{ f(k - 1) }}"
                    "{% endif %}{% endmacro %}{{ f(30) }}"
                )
            ),
        ),
        max_leaves=4,
    ).map(lambda t: "{% set ns = namespace(v='ab') %}" + t)


class _Loop:
    """A renderer on an event loop of its own thread, for hypothesis's synchronous tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.renderer = self.call(self._open())

    async def _open(self) -> TemplateRenderer:
        return await TemplateRenderer(RenderBudget()).__aenter__()

    def call(self, work: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=30)

    def close(self) -> None:
        self.call(self.renderer.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def loop() -> Iterator[_Loop]:
    running = _Loop()
    yield running
    running.close()


def render_as_the_worker_does(loop: _Loop, source: str) -> tuple[bool, Rendered, float]:
    try:
        compiled = templating.compile_template(source)
    except templating.TemplateError as exc:
        return True, Rendered(error=exc.message), 0.0
    started = time.monotonic()
    if compiled.inline:
        try:
            rendered = Rendered(compiled.evaluate(CONTEXT, MAX_CHARS))
        except templating.TemplateError as exc:
            rendered = Rendered(error=exc.message)
    else:
        work = loop.renderer.render(source, CONTEXT, condition=False, max_chars=MAX_CHARS)
        rendered = loop.call(work)
    return compiled.inline, rendered, time.monotonic() - started


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(templates())
def test_any_template_renders_within_its_budget(loop: _Loop, source: str) -> None:
    inline, rendered, seconds = render_as_the_worker_does(loop, source)
    if inline:
        assert seconds < INLINE_SECONDS, f"inline render of {source!r} took {seconds:.3f} s"
    else:
        assert seconds < loop.renderer.budget.wall_seconds + 1.0
    if rendered.error is None:
        assert len(json.dumps(rendered.value, ensure_ascii=False)) <= MAX_CHARS
    else:
        assert rendered.value is None


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(expressions())
def test_an_inline_expression_is_cheap_on_large_inputs(source: str) -> None:
    try:
        compiled = templating.compile_template("{{ " + source + " }}")
    except templating.TemplateError:
        return
    if not compiled.inline:
        return
    started = time.monotonic()
    with contextlib.suppress(templating.TemplateError):
        compiled.evaluate(CONTEXT, MAX_CHARS)
    assert time.monotonic() - started < INLINE_SECONDS, source
