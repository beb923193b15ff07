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
    shaped = {e["loc"][0] for e in errors if e["loc"] and not _other_shape(e)}
    for error in errors:
        if _other_shape(error) and error["loc"][0] in shaped:
            continue  # the value has the other shape of a union (one trigger, not a list)
        ctx = error.get("ctx", {})
        if error["type"] == _WHOLE_FLOW:
            problems.extend({"path": p, "message": m} for p, m in ctx["problems"])
            continue
        problems.append(
            {"path": _path(error["loc"], step_types), "message": _message(error, step_types, hints)}
        )
    return problems


_OTHER_SHAPE = ("list_type", "model_attributes_type", "model_type", "dict_type")


def _other_shape(error: ErrorDetails) -> bool:
    return error["type"] in _OTHER_SHAPE and bool(error["loc"]) and _is_branch(error["loc"][-1])


def _is_branch(part: int | str) -> bool:
    """Pydantic's label of a union member in a location (``tagged-union[...]``)."""
    return isinstance(part, str) and part.endswith("]") and "[" in part and "." not in part


def _is_tag(loc: tuple[int | str, ...], position: int) -> bool:
    """The tag after a tagged union's label (its own, or its list's and an index)."""
    before = loc[max(position - 2, 0) : position]
    return bool(before) and (
        str(before[-1]).startswith("tagged-union[")
        or (isinstance(before[-1], int) and str(before[0]).startswith("list[tagged-union["))
    )


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
        elif part == "[key]" or _is_branch(part) or _is_tag(loc, position):
            continue  # pydantic's marker for "the key itself", already in the path, or of
            # which member of a union is meant: not part of the document
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
