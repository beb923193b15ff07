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


def require_metrics_token(request: Request) -> None:
    """SLUICE_METRICS_TOKEN as a bearer token, when it is set (compared in constant time)."""
    settings: Settings = request.state.settings
    if settings.metrics_token is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not projects.same_secret(
        token.strip(), settings.metrics_token.get_secret_value()
    ):
        raise ApiError(401, "metrics need 'Authorization: Bearer <SLUICE_METRICS_TOKEN>'")


async def require_admin_view(request: Request) -> None:
    """The admin key, for views across projects; a project key is a 403."""
    settings: Settings = request.state.settings
    token = bearer(request)
    if settings.admin_api_key is not None and projects.same_secret(
        token, settings.admin_api_key.get_secret_value()
    ):
        return
    async with request.state.pool.connection() as conn:
        found = await projects.authenticate(conn, token)
    if found is not None:
        raise ApiError(403, "this view covers every project: it needs the admin key")
    raise ApiError(401, "invalid admin API key")


def require_admin(request: Request) -> None:
    settings: Settings = request.state.settings
    token = bearer(request)
    if settings.admin_api_key is None:
        raise ApiError(401, "project administration needs SLUICE_ADMIN_API_KEY to be set")
    if not projects.same_secret(token, settings.admin_api_key.get_secret_value()):
        raise ApiError(401, "invalid admin API key")
