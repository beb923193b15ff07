"""Console sessions: an API key exchanged for a signed cookie.

Invariant: the cookie (HttpOnly, SameSite=Lax, path /console, signed with itsdangerous and
dated) never holds a key, only its visible prefix and a short digest, and every request
re-checks that digest against the live key, so a revoked key's session ends at once. Every
form carries the session's CSRF token, compared in constant time; the sign-in form too (the
anonymous session holds one).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from app import projects
from app.flows import console_views
from app.settings import Settings

COOKIE = "sluice_console"
PATH = "/console"
ADMIN = "admin"
"""The key prefix an admin session holds."""


class SignInNeeded(Exception):
    """No session, an expired or forged one, or its key is no longer live."""


class CsrfRefused(Exception):
    """A form without its session's CSRF token."""


def signing_key(settings: Settings) -> bytes:
    """SLUICE_CONSOLE_SECRET, else derived from a secret every app process of a deployment
    shares already (the secrets key, the admin key, the database URL)."""
    source = next(
        secret.get_secret_value()
        for secret in (
            settings.console_secret,
            settings.secrets_key,
            settings.admin_api_key,
            settings.database_url,
        )
        if secret is not None
    )
    return hmac.new(source.encode(), b"sluice-console-session", hashlib.sha256).digest()


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(signing_key(settings), salt="sluice-console")


@dataclass(frozen=True)
class Session:
    csrf: str
    key_prefix: str | None = None
    fingerprint: str | None = None
    project_id: int | None = None
    """The key's project; for the admin, the project picked (None: not yet)."""

    @property
    def admin(self) -> bool:
        return self.key_prefix == ADMIN

    def dump(self) -> dict[str, Any]:
        return {"c": self.csrf, "k": self.key_prefix, "f": self.fingerprint, "p": self.project_id}


def read(request: Request) -> Session | None:
    """The request's session if its cookie is valid and not expired (unchecked key)."""
    settings: Settings = request.state.settings
    raw = request.cookies.get(COOKIE)
    if raw is None:
        return None
    try:
        data = _serializer(settings).loads(raw, max_age=int(settings.console_session_hours * 3600))
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("c"), str):
        return None
    project = data.get("p")
    return Session(
        csrf=data["c"],
        key_prefix=data.get("k"),
        fingerprint=data.get("f"),
        project_id=project if isinstance(project, int) else None,
    )


def anonymous(request: Request) -> Session:
    """The request's session, or a fresh one without a key (for the sign-in form's token)."""
    return read(request) or Session(csrf=secrets.token_urlsafe(24))


def store(request: Request, response: Response, session: Session | None) -> None:
    """Set the session cookie on `response` (None: remove it)."""
    settings: Settings = request.state.settings
    secure = request.url.scheme == "https"
    if session is None:
        response.delete_cookie(COOKIE, path=PATH, secure=secure, httponly=True, samesite="lax")
        return
    response.set_cookie(
        COOKIE,
        _serializer(settings).dumps(session.dump()),
        max_age=int(settings.console_session_hours * 3600),
        path=PATH,
        secure=secure,
        httponly=True,
        samesite="lax",
    )


async def sign_in(request: Request, key: str) -> Session | None:
    """A session for `key` (a project key, or the admin key), or None when it is not one."""
    settings: Settings = request.state.settings
    csrf = secrets.token_urlsafe(24)
    admin = settings.admin_api_key
    if admin is not None and projects.same_secret(key, admin.get_secret_value()):
        return Session(csrf, ADMIN, projects.fingerprint(key))
    async with request.state.pool.connection() as conn:
        project_id = await projects.authenticate(conn, key)
    prefix = projects.key_prefix(key)
    if project_id is None or prefix is None:
        return None
    return Session(csrf, prefix, projects.fingerprint(key), project_id)


@dataclass(frozen=True)
class Viewer:
    """Who looks: the session, and the project the pages show (None: an admin with no
    project yet)."""

    session: Session
    project_id: int | None
    projects: list[console_views.ProjectName]
    """The admin's picker; empty for a project key."""

    @property
    def admin(self) -> bool:
        return self.session.admin


async def viewer(request: Request) -> Viewer:
    """The signed-in viewer, its key checked again now (`SignInNeeded` otherwise)."""
    session = read(request)
    if session is None or session.key_prefix is None or session.fingerprint is None:
        raise SignInNeeded
    settings: Settings = request.state.settings
    async with request.state.pool.connection() as conn:
        if session.admin:
            admin = settings.admin_api_key
            if admin is None or not hmac.compare_digest(
                projects.fingerprint(admin.get_secret_value()), session.fingerprint
            ):
                raise SignInNeeded
            every = await console_views.list_projects(conn)
            ids = {project.id for project in every}
            picked = session.project_id if session.project_id in ids else None
            if picked is None and every:
                picked = every[0].id
            return Viewer(session, picked, every)
        project_id = await projects.key_still_live(conn, session.key_prefix, session.fingerprint)
    if project_id is None or project_id != session.project_id:
        raise SignInNeeded
    return Viewer(session, project_id, [])


def check_csrf(session: Session, form: Any) -> None:
    """Refuse a form whose `csrf` field is not the session's token."""
    given = form.get("csrf")
    if not isinstance(given, str) or not hmac.compare_digest(given, session.csrf):
        raise CsrfRefused
