"""What a webhook's (or a resume URL's) body becomes in the run: `trigger.body`.

JSON when it parses within the JSON limits (required when the content type says JSON); the
fields of a form (`application/x-www-form-urlencoded`, `multipart/form-data`) as a mapping;
else text. An empty body is an empty object. NUL characters, which PostgreSQL cannot store,
are refused.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Iterable
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from app.settings import Settings
from app.web._json import NotJson, Unstorable, loads
from app.web.body import decode_json, json_limits
from app.web.errors import ApiError

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
MAX_FORM_FIELDS = 1000
# A NUL byte, or an escaped NUL in JSON (one preceded by an even number of backslashes).
_NUL = re.compile(rb"\x00|(?<!\\)(?:\\\\)*\\u0000")


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


async def decode(raw: bytes, headers: Headers, settings: Settings) -> dict[str, Any]:
    """`{"body": value}`, plus `"raw_body"` (the text) for a URL-encoded form."""
    kind = media_type(headers.get("content-type"))
    if kind == MULTIPART and raw.strip():
        return {"body": await _multipart(raw, headers)}
    if _NUL.search(raw):
        raise ApiError(400, "the body contains a NUL character (\\u0000), which cannot be stored")
    if kind == URLENCODED:
        text = raw.decode("utf-8", errors="replace")
        return {"body": _fields(parse_qsl(text, keep_blank_values=True)), "raw_body": text}
    return {"body": decode_body(raw, kind, settings)}


def decode_body(raw: bytes, kind: str, settings: Settings) -> Any:
    if not raw.strip():
        return {}
    if kind.endswith(("/json", "+json")):
        return decode_json(raw, settings)
    try:
        return loads(raw, json_limits(settings))
    except NotJson:
        return raw.decode("utf-8", errors="replace")
    except Unstorable as exc:
        raise ApiError(400, str(exc)) from None


def _fields(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Fields by name: a value, or the list of values of a field given more than once."""
    values: dict[str, list[Any]] = {}
    for count, (name, value) in enumerate(pairs, start=1):
        if count > MAX_FORM_FIELDS:
            raise ApiError(400, f"the form has more than {MAX_FORM_FIELDS} fields")
        if "\x00" in name or (isinstance(value, str) and "\x00" in value):
            raise ApiError(400, "the form contains a NUL character, which cannot be stored")
        values.setdefault(name, []).append(value)
    return {name: found[0] if len(found) == 1 else found for name, found in values.items()}


async def _multipart(raw: bytes, headers: Headers) -> dict[str, Any]:
    """Text fields as text; a file part as its name, content type and size, not its
    contents (a step that needs a file's bytes is better sent JSON)."""

    async def stream() -> AsyncGenerator[bytes, None]:
        yield raw

    parser = MultiPartParser(
        headers,
        stream(),
        max_files=MAX_FORM_FIELDS,
        max_fields=MAX_FORM_FIELDS,
        max_part_size=len(raw) + 1,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ApiError(400, f"malformed multipart/form-data: {exc.message}") from None
    try:
        return _fields((name, _part(value)) for name, value in form.multi_items())
    finally:
        await form.close()


def _part(value: str | UploadFile) -> Any:
    if isinstance(value, str):
        return value
    return {
        "filename": value.filename,
        "content_type": value.content_type,
        "size": value.size,
    }
