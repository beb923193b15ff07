"""The `sluice` command line: `serve` and `migrate`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import warnings
from collections.abc import Sequence

import psycopg

from app import bootstrap, db, schema
from app.embedded import EmbeddedDatabaseError
from app.settings import ContainerType, Settings, SettingsError, load_settings
from migrations import runner

ROLES = {
    "app": ContainerType.APP,
    "worker": ContainerType.WORKER,
    "worker_and_app": ContainerType.WORKER_AND_APP,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sluice", description="Automation flows with PostgreSQL as the only moving part."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the app, the worker, or both")
    serve.add_argument("--host", help="address to bind (SLUICE_HOST; default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (SLUICE_PORT; default 8000)")
    serve.add_argument(
        "--role",
        choices=sorted(ROLES),
        help="override SLUICE_CONTAINER_TYPE (default worker_and_app)",
    )

    migrate = commands.add_parser("migrate", help="bring the database schema to the latest version")
    migrate.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 1 when the schema is not at the latest version",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides: dict[str, object] = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    if getattr(args, "role", None):
        overrides["container_type"] = ROLES[args.role]
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"sluice: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The embedded server's wrapper narrates every pg_ctl call at INFO.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="platformdirs")
    try:
        settings = db.with_database_url(settings)
        if args.command == "migrate":
            return _migrate(settings, check=args.check)
        return _serve(settings)
    except EmbeddedDatabaseError as exc:
        print(f"sluice: {exc}", file=sys.stderr)
        return 1
    except (psycopg.OperationalError, runner.DatabaseUnreachable) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"sluice: cannot reach the database: {reason}", file=sys.stderr)
        return 1


def _migrate(settings: Settings, *, check: bool) -> int:
    url = db.database_url(settings)
    if check:
        status = asyncio.run(_status(url))
        if status.at_head:
            print(f"schema at head ({status.head})")
            return 0
        print(f"schema at {status.current or 'nothing'}; head is {status.head}", file=sys.stderr)
        return 1
    schema.upgrade(url)
    print(f"schema at head ({schema.head_revision()})")
    return 0


async def _status(url: str) -> schema.SchemaStatus:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        return await schema.status(conn)


def _serve(settings: Settings) -> int:
    from app.serve import serve

    url = db.database_url(settings)
    if settings.migrate_on_start:
        schema.upgrade(url)
    if settings.admin_api_key is None and settings.container_type.runs_app:
        asyncio.run(bootstrap.ensure_first_project(url))
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
