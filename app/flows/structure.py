"""Checks of a flow definition as a whole, beyond what each field's type allows.

Invariant: a flow that passes has unique step ids across the whole flow (nested steps
included), nests no deeper than `MAX_NESTING_DEPTH` (checked on the raw document, before
pydantic recurses into it, so a deep document costs no deep recursion), has at most
`MAX_STEPS` steps, and every template in it compiles.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, Protocol

from app.flows import problems, templating

MAX_STEPS = 200
MAX_NESTING_DEPTH = 8


class Checked(Protocol):
    """What the checks read of a step."""

    templated: ClassVar[tuple[str, ...]]
    """Fields whose strings are templates (a branch's are conditions)."""

    @property
    def id(self) -> str: ...

    @property
    def type(self) -> str: ...


def check_depth(steps: Any) -> None:
    """Raise, for pydantic, if the raw `steps` of a document nest too deep."""
    too_deep = _too_deep(steps, "steps", 1)
    if too_deep is not None:
        problems.raise_found([(too_deep, f"steps nest deeper than {MAX_NESTING_DEPTH} levels")])


def check(walked: Iterable[tuple[str, Checked]]) -> None:
    """Raise, for pydantic, every problem of the flow whose steps, each with its path,
    nested ones included, are `walked`."""
    found: list[tuple[str, str]] = []
    first_seen: dict[str, str] = {}
    count = 0
    for path, step in walked:
        count += 1
        if step.id in first_seen:
            duplicate = f"duplicate step id '{step.id}' (also used at {first_seen[step.id]})"
            found.append((f"{path}.id", duplicate))
        else:
            first_seen[step.id] = path
        found.extend(_template_problems(step, path))
    if count > MAX_STEPS:
        found.append(("steps", f"the flow has {count} steps; the limit is {MAX_STEPS}"))
    problems.raise_found(found)


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


def _template_problems(step: Checked, path: str) -> Iterator[tuple[str, str]]:
    compiles = templating.check_condition if step.type == "branch" else templating.check
    for name in step.templated:
        for where, text in _strings(getattr(step, name), f"{path}.{name}"):
            try:
                compiles(text)
            except templating.TemplateError as exc:
                yield where, exc.message


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, problems.join(path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")
