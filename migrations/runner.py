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


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(config(url), revision)


def heads() -> tuple[str, ...]:
    return tuple(ScriptDirectory.from_config(config("postgresql://")).get_heads())


def head() -> str:
    (only,) = heads()
    return only
