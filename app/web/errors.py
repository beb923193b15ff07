"""Every error the HTTP API returns is JSON: an `Error`, ``{"error": message, ...details}``."""

from __future__ import annotations

from typing import Unpack

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.web.schemas import Error, ErrorDetails


class ApiError(Exception):
    """An expected failure with its HTTP status and a message naming the problem."""

    def __init__(self, status: int, message: str, **details: Unpack[ErrorDetails]) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


def error_response(status: int, message: str, **details: Unpack[ErrorDetails]) -> JSONResponse:
    return JSONResponse(Error(error=message, **details), status_code=status)


async def api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, **exc.details)


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail))


HANDLERS = {ApiError: api_error, HTTPException: http_error}
