"""Request bodies: read with a size limit and a time limit, parsed as JSON within limits
(`app.web._json`), validated by a pydantic model.

Invariant: a body costs bounded work. It is never buffered past SLUICE_MAX_BODY_BYTES
(413), a client that takes longer than SLUICE_HTTP_BODY_TIMEOUT_SECONDS to send it is
answered 408, and JSON nested too deep or with too long a number is a 400 naming the limit.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import pydantic
from starlette.requests import Request

from app.settings import Settings
from app.web._json import Limits, NotJson, Unstorable, loads
from app.web.errors import ApiError
from app.web.schemas import Problem

Model = TypeVar("Model", bound=pydantic.BaseModel)


def json_limits(settings: Settings) -> Limits:
    return Limits(depth=settings.max_json_depth, digits=settings.max_json_number_digits)


async def read_limited(request: Request) -> bytes:
    """The raw body, or 413 as soon as it exceeds SLUICE_MAX_BODY_BYTES (never buffered past
    it), or 408 when it is not all there within SLUICE_HTTP_BODY_TIMEOUT_SECONDS."""
    settings: Settings = request.state.settings
    limit = settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body exceeds {limit} bytes", limit=limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(settings.http_body_timeout_seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, f"request body exceeds {limit} bytes", limit=limit)
                chunks.append(chunk)
    except TimeoutError:
        seconds = settings.http_body_timeout_seconds
        raise ApiError(408, f"the request body took longer than {seconds:g} s to arrive") from None
    return b"".join(chunks)


def decode_json(raw: bytes, settings: Settings) -> Any:
    """The JSON value of `raw`, or 400 naming what is wrong (a limit, the syntax, a string
    that cannot be stored)."""
    try:
        return loads(raw, json_limits(settings))
    except NotJson as exc:
        if exc.limit is None:
            raise ApiError(400, str(exc)) from None
        raise ApiError(400, str(exc), limit=exc.limit) from None
    except Unstorable as exc:
        raise ApiError(400, str(exc)) from None


async def json_body(request: Request) -> Any:
    raw = await read_limited(request)
    if not raw.strip():
        raise ApiError(400, "request body is empty; expected JSON")
    return decode_json(raw, request.state.settings)


async def parse(request: Request, model: type[Model], *, optional: bool = False) -> Model:
    """The JSON body validated by `model` (400/422 otherwise); `optional`: an empty body is
    `{}`."""
    raw = await read_limited(request)
    if optional and not raw.strip():
        data: Any = {}
    elif not raw.strip():
        raise ApiError(400, "request body is empty; expected JSON")
    else:
        data = decode_json(raw, request.state.settings)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = [
            Problem(path=".".join(str(p) for p in e["loc"]) or "body", message=e["msg"])
            for e in exc.errors()
        ]
        raise ApiError(422, "invalid request body", problems=problems) from None
