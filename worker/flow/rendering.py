"""Templated fields of a step, rendered: inline ones at once, others by a render process.

Part of the replay, and like it free of I/O: a template that is not inline
(`app.flows.inline`) is asked for as a `Render` effect, which the engine hands to the
worker's render processes (`worker.templates`) and answers. A failed render is `final`: the
same template over the same context fails the same way, so the step's retries are not used.
Each failure names the field (``body.text``) and, when a limit stopped it, the limit.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any

from app.flows import templating
from app.flows.inline import Needs
from app.flows.model import StepStatus
from worker.flow.effects import Answer, Done, Effect, Failed, Render

Rendering = Generator[Effect, Answer, Any]
"""Returns the rendered value, or a `Failed` answer."""

_LIMIT_SETTINGS = (
    "SLUICE_TEMPLATE_CPU_MS, SLUICE_TEMPLATE_MAX_OUTPUT_CHARS and SLUICE_TEMPLATE_MEMORY_MB"
)


def value(
    given: Any, context: Mapping[str, Any], *, key: str, field: str, max_chars: int
) -> Rendering:
    """`given` with every string in it rendered, or the first failure."""
    if isinstance(given, str):
        if not templating.is_template(given):
            return given
        return (yield from _one(given, context, key, field, False, max_chars))
    if isinstance(given, dict):
        rendered: dict[str, Any] = {}
        for name, item in given.items():
            out = yield from value(
                item, context, key=key, field=f"{field}.{name}", max_chars=max_chars
            )
            if isinstance(out, Failed):
                return out
            rendered[name] = out
        return rendered
    if isinstance(given, list):
        items = []
        for index, item in enumerate(given):
            out = yield from value(
                item, context, key=key, field=f"{field}[{index}]", max_chars=max_chars
            )
            if isinstance(out, Failed):
                return out
            items.append(out)
        return items
    return given


def condition(
    expression: str, context: Mapping[str, Any], *, key: str, max_chars: int
) -> Rendering:
    """The truthiness of a branch's condition, or a `Failed` answer."""
    out = yield from _one(expression, context, key, "condition", True, max_chars)
    return out if isinstance(out, Failed) else bool(out)


def _one(
    source: str,
    context: Mapping[str, Any],
    key: str,
    field: str,
    is_condition: bool,
    max_chars: int,
) -> Rendering:
    try:
        if is_condition:
            compiled = templating.compile_condition(source)
        else:
            compiled = templating.compile_template(source)
        if compiled.inline:
            return compiled.evaluate(context, max_chars)
    except templating.TemplateError as exc:
        return failed(field, str(exc), limit=isinstance(exc, templating.TemplateLimit))
    answer = yield Render(
        key=key,
        field=field,
        source=source,
        condition=is_condition,
        context=_needed(compiled.needs, context),
        max_chars=max_chars,
    )
    if isinstance(answer, Failed):
        return answer
    assert isinstance(answer, Done), answer
    return answer.output


def failed(field: str, error: str, *, limit: bool) -> Failed:
    """The answer to a failed render of `field`."""
    note = f" (limits: {_LIMIT_SETTINGS})" if limit else ""
    return Failed(StepStatus.FAILED, f"{field}: {error}{note}", final=True)


def _needed(needs: Needs, context: Mapping[str, Any]) -> dict[str, Any]:
    subset = {name: context[name] for name in needs.names if name in context}
    for name, keys in needs.keys.items():
        entries = subset.get(name)
        if isinstance(entries, dict) and keys is not None:
            subset[name] = {key: entries[key] for key in keys if key in entries}
    return subset
