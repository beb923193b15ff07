"""Write ``migrations/schema.sql``: the schema that ``upgrade head`` produces, as pg_dump
prints it (without its session settings and comment banners), for readers of the code.

    python -m ops.snapshot [--database-url URL]    (./dev schema)

It migrates a fresh database on the given server (default: a temporary embedded one) and
dumps it with the pg_dump of that server's major version (on PATH, or the embedded one's).
``tests/integration/test_schema.py`` fails when the file and the migrations disagree.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from migrations import runner
from ops.bench import _database

SNAPSHOT = Path(__file__).resolve().parent.parent / "migrations" / "schema.sql"
HEADER = """\
-- The schema at the latest migration, written by `./dev schema` (python -m ops.snapshot)
-- from pg_dump; tests/integration/test_schema.py checks that `upgrade head` produces
-- exactly this. Edit the migrations, never this file.
"""
# pg_dump's session settings and banners, except the one the file needs to load: SQL
# functions are created before the tables their bodies name.
_NOISE = re.compile(r"^(SET (?!check_function_bodies)|SELECT pg_catalog\.set_config|--)")


def pg_dump(server_major: int) -> str:
    """A pg_dump able to dump a server of this major version: the embedded one's, else the
    one on PATH."""
    candidates = []
    try:
        from pgserver._commands import POSTGRES_BIN_PATH

        candidates.append(str(POSTGRES_BIN_PATH / "pg_dump"))
    except ImportError:
        pass
    candidates += [found] if (found := shutil.which("pg_dump")) else []
    for candidate in candidates:
        printed = subprocess.run([candidate, "--version"], capture_output=True, text=True)
        version = re.search(r"(\d+)\.\d+", printed.stdout)
        if version is not None and int(version[1]) >= server_major:
            return candidate
    raise SystemExit(f"no pg_dump of version {server_major} or newer (tried {candidates})")


def clean(dump: str) -> str:
    """pg_dump's text without session settings, banners and runs of blank lines."""
    lines = [line for line in dump.splitlines() if not _NOISE.match(line)]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return HEADER + "\n" + text + "\n"


def dump(url: str, server_major: int) -> str:
    completed = subprocess.run(
        [
            pg_dump(server_major),
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--no-comments",
            "--exclude-table=alembic_version",
            "--dbname",
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PGCLIENTENCODING": "UTF8"},
    )
    return clean(completed.stdout)


async def snapshot(server: str | None) -> str:
    with _database.server(server) as url:
        async with _database.fresh_database(url, "sluice_snapshot") as fresh:
            await asyncio.to_thread(runner.upgrade, fresh)
            async with await _database.connect(fresh) as conn:
                cur = await conn.execute("SELECT current_setting('server_version_num')::int")
                row = await cur.fetchone()
            assert row is not None
            return await asyncio.to_thread(dump, fresh, row[0] // 10000)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.snapshot", description=__doc__)
    parser.add_argument("--database-url", help="a server to work on (default: embedded)")
    args = parser.parse_args(argv)
    SNAPSHOT.write_text(asyncio.run(snapshot(args.database_url)), encoding="utf-8")
    print(f"wrote {SNAPSHOT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
