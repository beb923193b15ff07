"""`sluice serve`, `sluice migrate` and `sluice secrets`: the commands that run the server,
its schema and its secrets' keys."""

from __future__ import annotations

import argparse
import asyncio
import sys
import warnings
from collections.abc import Callable

import psycopg

from app import bootstrap, db, logs, schema
from app.embedded import EmbeddedDatabaseError
from app.secrets import keys
from app.secrets import store as secrets_store
from app.settings import ContainerType, Settings, SettingsError, load_settings
from migrations import runner


def run(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    if getattr(args, "role", None):
        overrides["container_type"] = ContainerType(args.role.upper())
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"sluice: {exc}", file=sys.stderr)
        return 2
    if args.command == "secrets" and args.action == "generate-key":
        print(keys.generate_key())
        return 0
    logs.configure(settings)  # secrets masked, libraries' request lines off
    warnings.filterwarnings("ignore", module="platformdirs")
    try:
        settings = db.with_database_url(settings)
        if args.command == "migrate":
            return _migrate(settings, check=args.check)
        if args.command == "secrets":
            return asyncio.run(_rotate(settings))
        return _serve(settings)
    except EmbeddedDatabaseError as exc:
        print(f"sluice: {exc}", file=sys.stderr)
        return 1
    except (psycopg.OperationalError, runner.DatabaseUnreachable) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"sluice: cannot reach the database: {reason}", file=sys.stderr)
        return 1


def _migrate(settings: Settings, *, check: bool) -> int:
    url = db.direct_url(settings)
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


async def _rotate(settings: Settings) -> int:
    try:
        ring = keys.keyring(settings)
    except keys.SecretsUnavailable as exc:
        print(f"sluice: {exc}", file=sys.stderr)
        return 2
    async with await psycopg.AsyncConnection.connect(db.direct_url(settings)) as conn:
        try:
            done = await secrets_store.rotate(conn, ring)
        except keys.UnknownKey as exc:
            print(f"sluice: {exc}", file=sys.stderr)
            return 1
        held = await secrets_store.count_by_key(conn)
    print(f"re-encrypted {done} secret(s) under key {ring.newest_id}")
    left = sum(count for key_id, count in held.items() if key_id != ring.newest_id)
    if left:
        print(f"{left} secret(s) are still under older keys (being written): run it again")
        return 1
    print("no secret is left under an older key: older keys can be dropped from SLUICE_SECRETS_KEY")
    return 0


async def _status(url: str) -> schema.SchemaStatus:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        return await schema.status(conn)


def _serve(settings: Settings) -> int:
    from app.serve import StartupError, serve

    url = db.direct_url(settings)
    if settings.migrate_on_start:
        schema.upgrade(url)
    if settings.admin_api_key is None and settings.container_type.runs_app:
        asyncio.run(bootstrap.ensure_first_project(url))
    try:
        with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
            runner.run(serve(settings))
    except StartupError as exc:
        print(f"sluice: {exc}", file=sys.stderr)
        return 2
    return 0


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (it is a dependency on Linux and macOS), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
