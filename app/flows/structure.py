"""Checks of a flow definition as a whole, beyond what each field's type allows.

Invariant: a flow that passes has unique step ids across the whole flow (nested steps
included), nests no deeper than `MAX_NESTING_DEPTH` (checked on the raw document, before
pydantic recurses into it, so a deep document costs no deep recursion), has at most
`MAX_STEPS` steps, every template in it compiles, every templated value that is not a
plain string stays within `MAX_VALUE_CHARS` as JSON, a literal loop list within
`MAX_LOOP_ITEMS`, every code step's code compiles as Python, and ``secrets.NAME`` is used
only where a value is sent and never recorded (`SECRET_FIELDS` of an http step), each
secret by name: what deploy can know is wrong does not wait for a run to fail.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, Protocol

from app.flows import problems, templating

MAX_STEPS = 200
MAX_NESTING_DEPTH = 8
MAX_LOOP_ITEMS = 1000
MAX_VALUE_CHARS = 16 * 1024
"""A templated JSON value (a respond body, an http body, an input) as JSON text."""
SECRET_FIELDS = ("url", "headers", "body")
"""The only templated fields (of an http step) where ``secrets.NAME`` may be used: what is
rendered there is sent, never recorded or returned."""


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
        found.extend(_value_problems(step, path))
        if step.type == "code":
            found.extend(_code_problems(getattr(step, "code", ""), f"{path}.code"))
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
    compiles = (
        templating.compile_condition if step.type == "branch" else templating.compile_template
    )
    for name in step.templated:
        for where, text in template_strings(getattr(step, name), f"{path}.{name}"):
            try:
                needs = compiles(text).needs
            except templating.TemplateError as exc:
                yield where, exc.message
                continue
            if "secrets" not in needs.names:
                continue
            if needs.fixed("secrets") is None:
                yield where, "name each secret: secrets.NAME (secrets cannot be listed or looped)"
            elif not (step.type == "http" and name in SECRET_FIELDS):
                yield (
                    where,
                    (
                        "secrets can be used only in an http step's url, headers and body "
                        "(a code step lists the ones it needs in `secrets`)"
                    ),
                )


def _value_problems(step: Checked, path: str) -> Iterator[tuple[str, str]]:
    for name in step.templated:
        value = getattr(step, name)
        if isinstance(value, str) or value is None:
            continue  # a string is a template, bounded on its own
        if step.type == "loop" and len(value) > MAX_LOOP_ITEMS:
            message = f"{len(value)} items; a loop takes at most {MAX_LOOP_ITEMS}"
            yield f"{path}.{name}", message
        size = len(json.dumps(value, ensure_ascii=False))
        if size > MAX_VALUE_CHARS:
            yield f"{path}.{name}", f"{size} characters as JSON; the limit is {MAX_VALUE_CHARS}"


def _code_problems(code: str, path: str) -> Iterator[tuple[str, str]]:
    """A syntax error of step code, found by compiling it (nothing runs)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarnings are the step's own business
            compile(code, "<step>", "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f"line {exc.lineno}, column {exc.offset}" if exc.lineno else "somewhere"
        yield path, f"Python syntax error at {where}: {exc.msg}"
    except (ValueError, RecursionError, MemoryError) as exc:
        yield path, f"the code cannot be compiled: {type(exc).__name__}: {exc}"


def template_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from template_strings(item, problems.join(path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from template_strings(item, f"{path}[{index}]")
