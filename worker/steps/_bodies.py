"""Bodies of the `http` step: a step's value as a request body, a response body as a value.

Invariant: a decoded body is always storable as jsonb (NaN and Infinity are not JSON, so a
response that uses them is kept as text).
"""

from __future__ import annotations

import json
from typing import Any

import httpx


class NotJson(ValueError):
    """A request body that is neither None, a string nor a JSON value."""


def encode(body: Any, headers: httpx.Headers) -> bytes | None:
    """The encoded body; sets a content-type for it unless `headers` has one."""
    if body is None:
        return None
    if isinstance(body, str):
        headers.setdefault("content-type", "text/plain; charset=utf-8")
        return body.encode()
    try:
        content = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise NotJson(str(exc)) from None
    headers.setdefault("content-type", "application/json")
    return content


def decode(body: bytes, content_type: str) -> Any:
    """JSON when typed as JSON and parsable, else text (undecodable bytes replaced)."""
    if not body:
        return None
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            return json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            pass
    return body.decode(errors="replace")


def _reject_constant(name: str) -> Any:
    raise ValueError(name)
