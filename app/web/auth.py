"""Bearer authentication: project API keys, and the admin key for project administration."""

from __future__ import annotations

from starlette.requests import Request

from app import projects
from app.settings import Settings
from app.web.errors import ApiError


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'")
    return token.strip()


async def project_id(request: Request) -> int:
    """The project whose key authenticates this request (401 otherwise)."""
    token = bearer(request)
    async with request.state.pool.connection() as conn:
        found = await projects.authenticate(conn, token)
    if found is None:
        raise ApiError(401, "invalid API key")
    return found


def require_admin(request: Request) -> None:
    settings: Settings = request.state.settings
    token = bearer(request)
    if settings.admin_api_key is None:
        raise ApiError(401, "project administration needs SLUICE_ADMIN_API_KEY to be set")
    if not projects.same_secret(token, settings.admin_api_key.get_secret_value()):
        raise ApiError(401, "invalid admin API key")
