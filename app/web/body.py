"""Request bodies: read with a size limit, parsed as JSON, validated by a pydantic model."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import pydantic
from starlette.requests import Request

from app.web.errors import ApiError
from app.web.schemas import Problem

Model = TypeVar("Model", bound=pydantic.BaseModel)


async def read_limited(request: Request, limit: int) -> bytes:
    """The raw body, or 413 as soon as it exceeds `limit` bytes (never buffered past it)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body exceeds {limit} bytes", limit=limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body exceeds {limit} bytes", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request, limit: int) -> Any:
    raw = await read_limited(request, limit)
    if not raw.strip():
        raise ApiError(400, "request body is empty; expected JSON")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"malformed JSON: {exc}") from None


async def parse(request: Request, model: type[Model], limit: int) -> Model:
    data = await json_body(request, limit)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = [
            Problem(path=".".join(str(p) for p in e["loc"]) or "body", message=e["msg"])
            for e in exc.errors()
        ]
        raise ApiError(422, "invalid request body", problems=problems) from None
