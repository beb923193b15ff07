"""The secrets and vars tables: the only runner of ``app/sql/secrets.sql``.

Invariant: a secret's value is in this module only on its way in (encrypted before the
statement) or out (decrypted for a run after it); a listing never reads the ciphertext.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

from app import queries
from app.secrets.keys import Keyring

_SQL = queries.load("secrets")
ROTATE_BATCH = 500


@dataclasses.dataclass(frozen=True)
class SecretInfo:
    name: str
    created_at: datetime
    updated_at: datetime


@dataclasses.dataclass(frozen=True)
class Var:
    name: str
    value: str
    created_at: datetime
    updated_at: datetime


@dataclasses.dataclass(frozen=True)
class Put:
    """What a set answers: the row (never a secret's value) and whether it is new."""

    row: SecretInfo | Var
    created: bool


async def put_secret(
    conn: AsyncConnection[Any], keys: Keyring, project_id: int, name: str, value: str
) -> Put:
    key_id, ciphertext = keys.encrypt(value)
    cur = await conn.execute(
        _SQL["put_secret"],
        {"project_id": project_id, "name": name, "key_id": key_id, "ciphertext": ciphertext},
    )
    row = await cur.fetchone()
    assert row is not None
    return Put(SecretInfo(row[0], row[1], row[2]), bool(row[3]))


async def list_secrets(conn: AsyncConnection[Any], project_id: int) -> list[SecretInfo]:
    async with conn.cursor(row_factory=class_row(SecretInfo)) as cur:
        await cur.execute(_SQL["list_secrets"], {"project_id": project_id})
        return await cur.fetchall()


async def delete_secret(conn: AsyncConnection[Any], project_id: int, name: str) -> bool:
    cur = await conn.execute(_SQL["delete_secret"], {"project_id": project_id, "name": name})
    return await cur.fetchone() is not None


async def secret_values(
    conn: AsyncConnection[Any], keys: Keyring, project_id: int, names: Iterable[str]
) -> dict[str, str]:
    """The named secrets of the project, decrypted (missing ones are left out)."""
    cur = await conn.execute(
        _SQL["secret_values"], {"project_id": project_id, "names": sorted(names)}
    )
    return {
        name: keys.decrypt(key_id, bytes(token)) for name, key_id, token in await cur.fetchall()
    }


async def rotate(conn: AsyncConnection[Any], keys: Keyring) -> int:
    """Re-encrypt every secret under the newest key, a batch per transaction; how many."""
    done = 0
    while True:
        async with conn.transaction():
            cur = await conn.execute(
                _SQL["secrets_to_rotate"], {"newest": keys.newest_id, "limit": ROTATE_BATCH}
            )
            rows = await cur.fetchall()
            for project_id, name, _key_id, token in rows:
                await conn.execute(
                    _SQL["rotate_secret"],
                    {
                        "project_id": project_id,
                        "name": name,
                        "key_id": keys.newest_id,
                        "ciphertext": keys.rotate(bytes(token)),
                    },
                )
        done += len(rows)
        if len(rows) < ROTATE_BATCH:
            return done


async def count_by_key(conn: AsyncConnection[Any]) -> dict[str, int]:
    cur = await conn.execute(_SQL["count_secrets_by_key"])
    return {key_id: int(count) for key_id, count in await cur.fetchall()}


async def put_var(conn: AsyncConnection[Any], project_id: int, name: str, value: str) -> Put:
    cur = await conn.execute(
        _SQL["put_var"], {"project_id": project_id, "name": name, "value": value}
    )
    row = await cur.fetchone()
    assert row is not None
    return Put(Var(row[0], row[1], row[2], row[3]), bool(row[4]))


async def list_vars(conn: AsyncConnection[Any], project_id: int) -> list[Var]:
    async with conn.cursor(row_factory=class_row(Var)) as cur:
        await cur.execute(_SQL["list_vars"], {"project_id": project_id})
        return await cur.fetchall()


async def get_var(conn: AsyncConnection[Any], project_id: int, name: str) -> Var | None:
    async with conn.cursor(row_factory=class_row(Var)) as cur:
        await cur.execute(_SQL["get_var"], {"project_id": project_id, "name": name})
        return await cur.fetchone()


async def delete_var(conn: AsyncConnection[Any], project_id: int, name: str) -> bool:
    cur = await conn.execute(_SQL["delete_var"], {"project_id": project_id, "name": name})
    return await cur.fetchone() is not None


async def var_values(
    conn: AsyncConnection[Any], project_id: int, names: Iterable[str] | None
) -> dict[str, str]:
    """The named vars of the project (every var when `names` is None)."""
    listed = None if names is None else sorted(names)
    cur = await conn.execute(_SQL["var_values"], {"project_id": project_id, "names": listed})
    return {name: value for name, value in await cur.fetchall()}


async def missing(
    conn: AsyncConnection[Any], project_id: int, secrets: Iterable[str], variables: Iterable[str]
) -> tuple[list[str], list[str]]:
    """Which of these secret and var names the project does not have."""
    wanted_secrets, wanted_vars = sorted(set(secrets)), sorted(set(variables))
    cur = await conn.execute(
        _SQL["secret_names"], {"project_id": project_id, "names": wanted_secrets}
    )
    have_secrets = {row[0] for row in await cur.fetchall()}
    cur = await conn.execute(_SQL["var_names"], {"project_id": project_id, "names": wanted_vars})
    have_vars = {row[0] for row in await cur.fetchall()}
    return (
        [name for name in wanted_secrets if name not in have_secrets],
        [name for name in wanted_vars if name not in have_vars],
    )


async def flow_definitions(conn: AsyncConnection[Any], project_id: int) -> list[tuple[str, Any]]:
    cur = await conn.execute(_SQL["flow_definitions"], {"project_id": project_id})
    return [(name, definition) for name, definition in await cur.fetchall()]
