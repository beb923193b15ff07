"""Render processes: every template that is not inline is rendered under a CPU, memory,
output and wall-time budget, and what breaks a process does not break the renderer.

The bombs are the ones an attacker with a project key rendered in the worker itself before
(300 MB strings, a doubled namespace value, powers of powers, 60 million loop turns)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest

from worker.templates import RenderBudget, Rendered, TemplateRenderer

MiB = 1024 * 1024


async def render(
    renderer: TemplateRenderer, source: str, context: dict[str, Any] | None = None, **kw: Any
) -> Rendered:
    return await renderer.render(
        source,
        context or {},
        condition=kw.get("condition", False),
        max_chars=kw.get("max_chars", MiB),
    )


@pytest.fixture
async def renderer() -> Any:
    async with TemplateRenderer(RenderBudget()) as running:
        yield running


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


BOMBS = {
    "center": ("{{ 'a'|center(300000000)|length }}", "needed more than 64 MiB of memory"),
    "format": ("{{ '%0300000000d'|format(1)|length }}", "needed more than 64 MiB of memory"),
    "replace": (
        "{{ ('a'*1000)|replace('a','b'*100000)|length }}",
        "needed more than 64 MiB of memory",
    ),
    "namespace doubling": (
        "{% set ns = namespace(s='a') %}{% for i in range(40) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
        "needed more than 64 MiB of memory",
    ),
    "list doubling": (
        "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}"
        "{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}",
        "a sum longer than the limit of 1000000 items",
    ),
    "power of powers": ("{{ (((2**1024)**1024)**8) > 0 }}", "a power with more than 65536 bits"),
    "product of powers": ("{{ (2**1000) * (2**1000) * (3**1000) > 0 }}", None),
    "nested loops": (
        "{% for i in range(20000) %}{% for j in range(3000) %}{% endfor %}{% endfor %}done",
        "used more than 100 ms of CPU time",
    ),
    "exponential macro": (
        "{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}"
        "{{ f(40) }}",
        "used more than 100 ms of CPU time",
    ),
    "endless macro": (
        "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
        "RecursionError: maximum recursion depth exceeded",
    ),
    "text output": (
        "{% for i in range(90000) %}0123456789abcdef{% endfor %}",
        "renders more than 1,048,576 characters",
    ),
    "a big value within the limits": ("{{ range(20000)|list }}", None),
}


@pytest.mark.parametrize("name", BOMBS)
async def test_a_bomb_ends_with_an_error_and_the_next_render_works(
    renderer: TemplateRenderer, name: str
) -> None:
    source, message = BOMBS[name]
    started = time.monotonic()
    rendered = await render(renderer, source)
    assert time.monotonic() - started < renderer.budget.wall_seconds
    if message is None:  # within every limit: rendered
        assert rendered.error is None, rendered
    else:
        assert rendered.value is None
        assert rendered.error == message
    after = await render(renderer, "{{ x.y ~ '!' }}", {"x": {"y": "fine"}})
    assert after == Rendered("fine!")


async def test_a_value_over_the_output_limit_is_refused(renderer: TemplateRenderer) -> None:
    rendered = await render(renderer, "{{ range(20000)|list }}", max_chars=64 * 1024)
    assert rendered == Rendered(error="renders more than 65,536 characters", limit=True)


async def test_a_render_stuck_past_the_wall_time_is_killed_and_replaced() -> None:
    budget = RenderBudget(cpu_seconds=30, wall_seconds=0.5)
    async with TemplateRenderer(budget) as renderer:
        assert (await render(renderer, "{{ 1 + 1 }}")).value == 2
        (first,) = renderer.pids
        started = time.monotonic()
        rendered = await render(renderer, BOMBS["nested loops"][0])
        assert time.monotonic() - started < 5
        assert rendered == Rendered(error="took longer than 0.5 s", limit=True)
        assert gone(first)
        assert (await render(renderer, "{{ 2 + 2 }}")).value == 4
        assert first not in renderer.pids


async def test_renders_share_at_most_the_configured_processes() -> None:
    async with TemplateRenderer(RenderBudget(processes=2)) as renderer:
        seen: set[int] = set()

        async def one(n: int) -> Any:
            rendered = await render(renderer, "{{ range(n)|sum }}", {"n": n})
            seen.update(renderer.pids)
            return rendered.value

        values = await asyncio.gather(*(one(n) for n in range(12)))
        assert values == [sum(range(n)) for n in range(12)]
        assert len(seen) <= 2
        pids = renderer.pids
    assert all(gone(pid) for pid in pids), "close() stops every render process"


async def test_conditions_and_errors_come_back_as_they_would_in_process(
    renderer: TemplateRenderer,
) -> None:
    assert (await render(renderer, "x|length > 2", {"x": [1, 2, 3]}, condition=True)).value
    undefined = await render(renderer, "{{ nosuch ~ 1 }}")
    assert undefined == Rendered(error="'nosuch' is undefined")
    private = await render(renderer, "{{ x.__class__ ~ 1 }}", {"x": 1})
    assert private.error is not None
    assert "unsafe" in private.error or "undefined" in private.error
