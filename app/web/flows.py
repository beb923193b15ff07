"""Flow definitions over HTTP (so far: the published JSON Schema editors validate against)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from app.flows import flow_json_schema


async def schema(_request: Request) -> JSONResponse:
    return JSONResponse(flow_json_schema())
