"""A PostgreSQL cluster the chaos suite owns: created in a temporary directory, then stopped,
started and crashed at will, always on the same data directory and socket.

The binaries are pgserver's (the project's embedded server), or those of the directory named
by ``SLUICE_CHAOS_POSTGRES_BIN`` (initdb, pg_ctl, postgres; for example
``/usr/lib/postgresql/15/bin``). As root, PostgreSQL runs as pgserver's ``pgserver`` system
user, as the embedded server does. The server listens on a Unix socket in the directory
only, so the URL stays the same across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import stat
import tempfile
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection

BIN_ENV = "SLUICE_CHAOS_POSTGRES_BIN"
SYSTEM_USER = "pgserver"
COMMAND_SECONDS = 60.0


class PostgresError(Exception):
    """A pg_ctl or initdb command failed; the message carries its output."""


def binaries() -> Path:
    """The directory of the server binaries: $SLUICE_CHAOS_POSTGRES_BIN, else pgserver's."""
    configured = os.environ.get(BIN_ENV)
    if configured:
        return Path(configured)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pgserver's platformdirs probe (no XDG_RUNTIME_DIR)
        from pgserver._commands import POSTGRES_BIN_PATH
    path: Path = POSTGRES_BIN_PATH
    return path


class Postgres:
    """One cluster: `pgdata`, a socket directory and a log, under `root`."""

    def __init__(self, root: Path, bin_dir: Path) -> None:
        self.root = root
        self.bin_dir = bin_dir
        self.pgdata = root / "pgdata"
        self.run_dir = root / "run"
        self.log = self.run_dir / "postgres.log"
        self._user = SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        """The maintenance database, over the socket."""
        return f"postgresql://postgres:@/postgres?host={self.run_dir}"

    async def create(self) -> None:
        """initdb, as the system user when run as root."""
        self.run_dir.mkdir(parents=True)
        self.pgdata.mkdir()
        if self._user is not None:
            _make_usable_by(self._user, [self.pgdata, self.run_dir], self.bin_dir)
        await self._run(
            "initdb",
            "-D",
            str(self.pgdata),
            "--auth=trust",
            "--encoding=utf8",
            "--no-sync",
            "-U",
            "postgres",
        )

    async def start(self) -> None:
        """Start the server and return once it accepts connections."""
        options = f"-h '' -k {self.run_dir}"
        await self._pg_ctl("-w", "-t", "60", "-l", str(self.log), "-o", options, "start")

    async def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` ends sessions cleanly, `immediate` is a crash (no
        checkpoint; the next start recovers from the WAL)."""
        await self._pg_ctl("-w", "-t", "60", "-m", mode, "stop")

    async def restart_immediate(self) -> None:
        await self.stop("immediate")
        await self.start()

    async def terminate_backends(self, database: str, application: str) -> int:
        """`pg_terminate_backend` every backend of `database` whose application name starts
        with `application`; how many it ended."""
        async with await AsyncConnection.connect(self.url, autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND starts_with(application_name, %s) "
                "AND pid <> pg_backend_pid()",
                (database, application),
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()

    async def _pg_ctl(self, *args: str) -> None:
        await self._run("pg_ctl", "-D", str(self.pgdata), *args)

    async def _run(self, program: str, *args: str) -> None:
        # Output to a file, not a pipe: the postmaster that `pg_ctl start` leaves behind
        # would hold a pipe open and the read would never end.
        with tempfile.TemporaryFile() as output:
            kwargs: dict[str, Any] = {"user": self._user} if self._user else {}
            process = await asyncio.create_subprocess_exec(
                str(self.bin_dir / program),
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                cwd=self.root,
                **kwargs,
            )
            try:
                code = await asyncio.wait_for(process.wait(), COMMAND_SECONDS)
            except TimeoutError:
                process.kill()
                await process.wait()
                raise PostgresError(f"{program} {' '.join(args)}: no answer in 60 s") from None
            if code != 0:
                output.seek(0)
                text = output.read().decode(errors="replace").strip()
                raise PostgresError(f"{program} {' '.join(args)} exited with {code}: {text}")


def _make_usable_by(user: str, owned: list[Path], bin_dir: Path) -> None:
    """Let `user` reach and own `owned` and run the binaries, as pgserver does for its
    embedded server (it only ever adds read and traverse bits)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

    ensure_user_exists(user)
    entry = pwd.getpwnam(user)
    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_prefix_permissions(bin_dir)
    ensure_folder_permissions(bin_dir, read | execute)
    if (bin_dir.parent / "lib").is_dir():
        ensure_folder_permissions(bin_dir.parent / "lib", read)
    for path in owned:
        ensure_prefix_permissions(path)
        os.chown(path, entry.pw_uid, entry.pw_gid)


@contextlib.asynccontextmanager
async def temporary_postgres(bin_dir: Path | None = None) -> AsyncIterator[Postgres]:
    """A new cluster in a temporary directory, started; stopped and removed at the end."""
    root = Path(tempfile.mkdtemp(prefix="sluice-chaos-pg-"))
    postgres = Postgres(root, bin_dir or binaries())
    try:
        await postgres.create()
        await postgres.start()
        yield postgres
    finally:
        if postgres.running():
            with contextlib.suppress(PostgresError):
                await postgres.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
