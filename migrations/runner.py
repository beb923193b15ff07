"""Programmatic alembic: upgrade, downgrade and revision queries for a database URL.

The schema is owned by these migrations; `sluice migrate` and start-up (unless disabled)
call `upgrade`. Migrations of one database are serialised by alembic's transaction plus an
advisory lock, so two processes starting together do not race.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.exc import OperationalError

_HERE = Path(__file__).resolve().parent


def sqlalchemy_url(url: str) -> str:
    """A libpq URL (postgresql://…) as SQLAlchemy's psycopg 3 dialect spells it."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
        raise ValueError(f"not a PostgreSQL URL (scheme {parts.scheme!r})")
    return urlunsplit(("postgresql+psycopg", *parts[1:]))


def config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE))
    cfg.attributes["database_url"] = url
    return cfg


class DatabaseUnreachable(Exception):
    """The database did not accept a connection; the message is the driver's first line."""


def upgrade(url: str, revision: str = "head") -> None:
    try:
        command.upgrade(config(url), revision)
    except OperationalError as exc:
        raise DatabaseUnreachable(_first_line(exc.orig)) from None


def downgrade(url: str, revision: str = "base") -> None:
    try:
        command.downgrade(config(url), revision)
    except OperationalError as exc:
        raise DatabaseUnreachable(_first_line(exc.orig)) from None


def _first_line(error: BaseException | None) -> str:
    text = str(error or "unknown error").strip()
    return text.splitlines()[0] if text else "unknown error"


def heads() -> tuple[str, ...]:
    return tuple(ScriptDirectory.from_config(config("postgresql://")).get_heads())


def head() -> str:
    (only,) = heads()
    return only
