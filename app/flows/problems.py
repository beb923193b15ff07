"""What is wrong with a flow definition, as its author reads it: a path and a message each.

Invariant: every problem found is reported at once, each at the path of the value at fault
written in the document's own terms (``steps[1].status``, ``steps[0].body["X Y"]``: no
pydantic internals such as a discriminator's tag), with a message that says what would be
accepted where pydantic's own would only name a pattern.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

from pydantic_core import ErrorDetails, PydanticCustomError

_WHOLE_FLOW = "flow_structure"


class FlowDefinitionError(ValueError):
    """A definition that does not validate; `problems` is fit for an HTTP 422 body."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        self.problems = problems
        listed = "; ".join(
            f"{p['path']}: {p['message']}" if p["path"] else p["message"] for p in problems
        )
        super().__init__(f"invalid flow definition: {listed}")


def raise_found(problems: list[tuple[str, str]]) -> None:
    """Raise, for pydantic, every problem found by a whole-flow check (with its own path)."""
    if problems:
        raise PydanticCustomError(
            _WHOLE_FLOW,
            "{summary}",
            {"summary": "; ".join(f"{p}: {m}" for p, m in problems), "problems": problems},
        )


def listed(
    errors: list[ErrorDetails], *, step_types: Sequence[str], hints: Mapping[str, str]
) -> list[dict[str, str]]:
    """Pydantic's errors as problems; `hints` explain a mismatch of each pattern they key."""
    problems: list[dict[str, str]] = []
    for error in errors:
        ctx = error.get("ctx", {})
        if error["type"] == _WHOLE_FLOW:
            problems.extend({"path": p, "message": m} for p, m in ctx["problems"])
            continue
        problems.append(
            {"path": _path(error["loc"], step_types), "message": _message(error, step_types, hints)}
        )
    return problems


def join(path: str, key: str) -> str:
    """The path of `key` in the object at `path`."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _message(error: ErrorDetails, step_types: Sequence[str], hints: Mapping[str, str]) -> str:
    ctx = error.get("ctx", {})
    if error["type"] == "union_tag_invalid":
        return f"unknown step type {ctx['tag']!r}; expected one of: {', '.join(step_types)}"
    if error["type"] == "union_tag_not_found":
        return f"a step needs a 'type', one of: {', '.join(step_types)}"
    if error["type"] == "string_pattern_mismatch" and ctx.get("pattern") in hints:
        return hints[ctx["pattern"]]
    return error["msg"].removeprefix("Value error, ")


def _path(loc: tuple[int | str, ...], step_types: Sequence[str]) -> str:
    """``('steps', 1, 'respond', 'status')`` → ``steps[1].status``.

    Pydantic puts the discriminator's tag after a step's index; it is not part of the
    document, so it is left out.
    """
    path = ""
    for position, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]":
            continue  # pydantic's marker for "the key itself", already in the path
        elif (
            position >= 2
            and isinstance(loc[position - 1], int)
            and loc[position - 2] in ("steps", "then", "else")
            and part in step_types
        ):
            continue
        else:
            path = join(path, part)
    return path
