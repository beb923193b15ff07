"""Behind a transaction-pooling PgBouncer: the pool takes SLUICE_DATABASE_URL, and every
connection that needs a session of its own (LISTEN, leadership) takes
SLUICE_DIRECT_DATABASE_URL. Two roles stand in for the two routes to the server."""

from __future__ import annotations

import secrets
from urllib.parse import quote, urlsplit, urlunsplit

from psycopg import sql
from pydantic import SecretStr

from tests.integration.helpers import connect, eventually, fetchval
from tests.worker.running import running


def as_user(url: str, user: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user)}@{host}"))


async def test_session_connections_take_the_direct_url_and_the_pool_the_pooled_one(
    database_url: str,
) -> None:
    pooled_role = f"sluice_pooled_{secrets.token_hex(3)}"
    async with await connect(database_url) as admin:
        direct_role = await fetchval(admin, "SELECT current_user")
        await admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(pooled_role)))
        for grant in (
            "GRANT ALL ON ALL TABLES IN SCHEMA public TO {}",
            "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {}",
        ):
            await admin.execute(sql.SQL(grant).format(sql.Identifier(pooled_role)))
        pooled_url = as_user(database_url, pooled_role)

        async def sessions_by_user() -> dict[str, set[str]]:
            cur = await admin.execute(
                "SELECT a.usename, a.query, l.locktype"
                " FROM pg_stat_activity a"
                " LEFT JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'advisory'"
                " WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()"
            )
            found: dict[str, set[str]] = {}
            for user, query, lock in await cur.fetchall():
                kind = "lock" if lock else ("listen" if query.startswith("LISTEN") else "other")
                found.setdefault(user, set()).add(kind)
            return found

        async with running(pooled_url, {}, direct_database_url=SecretStr(database_url)):
            seen: dict[str, set[str]] = {}

            async def settled() -> bool:
                nonlocal seen
                seen = await sessions_by_user()
                return {"listen", "lock"} <= seen.get(direct_role, set())

            await eventually(settled, within=20)

        # The pooled role's connections did the queue's work; none of them listens or holds
        # a session advisory lock.
        assert "other" in seen.get(pooled_role, set()), seen
        assert not {"listen", "lock"} & seen.get(pooled_role, set()), seen
        # The worker has stopped and closed its connections: the role can go (roles are
        # shared by every database of the server).
        await admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(pooled_role)))
        await admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(pooled_role)))
