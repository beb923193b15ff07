"""JSON from untrusted bytes, within limits on nesting and on the length of numbers.

Invariant: `json.loads` never sees a document nested deeper than the depth limit nor a run
of digits longer than the digit limit. Both are found by a linear scan of the bytes (no
recursion), so a hostile document is refused with the limit it breaks, never a
`RecursionError` or the `ValueError` of a huge integer. What is accepted can be stored:
numbers are finite and strings hold neither NUL nor a lone surrogate, which PostgreSQL
refuses.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass
from typing import Any

# A JSON string, escapes included (unrolled, so that long strings cost no backtracking).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


@dataclass(frozen=True)
class Limits:
    depth: int
    digits: int


class NotJson(ValueError):
    """Malformed, or beyond a limit (then `limit` is that limit)."""

    def __init__(self, message: str, limit: int | None = None) -> None:
        super().__init__(message)
        self.limit = limit


class Unstorable(ValueError):
    """Valid JSON that PostgreSQL cannot store (a NUL, a lone surrogate)."""


def loads(raw: bytes, limits: Limits) -> Any:
    """The JSON value of `raw`; `NotJson` or `Unstorable` when it cannot be accepted."""
    unquoted = _STRING.sub(b'""', raw)
    if re.search(rb"[0-9]{%d}" % (limits.digits + 1), unquoted):
        raise NotJson(f"a JSON number has more than {limits.digits} digits", limits.digits)
    if _nesting(unquoted) > limits.depth:
        raise NotJson(f"JSON nested deeper than {limits.depth} levels", limits.depth)
    try:
        value = json.loads(raw, parse_float=_finite, parse_constant=_no_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NotJson(f"malformed JSON: {exc}") from None
    except _NotFinite as exc:
        raise NotJson(str(exc)) from None
    _check_strings(value)
    return value


def _nesting(unquoted: bytes) -> int:
    """How deep arrays and objects nest in a document whose strings are emptied."""
    brackets = unquoted.translate(None, _NOT_BRACKETS)
    return max(itertools.accumulate(_STEP[b] for b in brackets), default=0)


class _NotFinite(ValueError):
    pass


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(f"the JSON number {text[:40]} is out of range")
    return value


def _no_constant(text: str) -> float:
    raise _NotFinite(f"{text} is not a JSON number")


def _check_strings(value: Any) -> None:
    """Every key and string of `value` can be stored (iterative: depth is bounded anyway)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str) and not item.isascii():
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise Unstorable("a JSON string holds a lone surrogate (\\ud800-\\udfff)") from None
        if isinstance(item, str) and "\x00" in item:
            raise Unstorable("a JSON string holds a NUL character (\\u0000): it cannot be stored")
