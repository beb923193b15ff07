"""Alembic environment: runs the SQL migrations over one connection to the target URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from migrations.runner import sqlalchemy_url


def run_migrations_online() -> None:
    url = context.config.attributes["database_url"]
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            # One migrator at a time per database; the others wait, then find it at head.
            context.execute("SELECT pg_advisory_xact_lock(hashtextextended('sluice:migrate', 0))")
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit(
        "offline migrations are not supported; run `sluice migrate` against a database"
    )
run_migrations_online()
