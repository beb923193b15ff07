"""After its database connections are killed (as a restart or pg_terminate_backend does),
a running Sluice answers the next requests as before: no 500, no 503, no lost run."""

from __future__ import annotations

import asyncio
from typing import Any

from psycopg import sql

from tests.flows.helpers import local_server, started_run, step
from tests.flows.stack import running_stack
from tests.integration.helpers import connect, eventually, fetchval

FLOW: dict[str, Any] = {
    "name": "hello",
    "steps": [{"id": "reply", "type": "respond", "body": "{{ trigger.body.n }}"}],
}
KILL = (
    "SELECT array_agg(pid) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " AND application_name LIKE 'sluice%%' AND pg_terminate_backend(pid)"
)


async def test_killed_backends_cost_no_request(database_url: str) -> None:
    async with running_stack(database_url) as stack, await connect(database_url) as killer:
        flow = await stack.deploy(FLOW)
        assert (await stack.trigger(flow["id"], {"n": 0}, sync=True)).status_code == 200

        for round_ in range(3):
            killed = await fetchval(killer, KILL)
            assert killed

            async def gone(killed: list[int] = killed) -> bool:
                # The backends have exited: what they leave behind are dead connections.
                left = "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)"
                return bool(await fetchval(killer, left, (killed,)) == 0)

            await eventually(gone)

            for n in range(10):
                reply = await stack.trigger(flow["id"], {"n": n}, sync=True)
                assert reply.status_code == 200, (round_, n, reply.status_code, reply.text)
                assert reply.json() == n


ONCE: dict[str, Any] = {
    "name": "once",
    "steps": [
        {"id": "effect", "type": "http", "method": "POST", "url": "{{ trigger.body.url }}"},
        {"id": "reply", "type": "respond", "body": "done"},
    ],
}


async def test_an_effect_happens_once_when_the_database_blinks_before_its_record(
    database_url: str, server_url: str
) -> None:
    """The http step's effect happens, then the worker's connections die and the database
    refuses new ones for a while: its record is written once the database is back, and the
    step does not run again."""
    async with (
        local_server() as server,
        running_stack(database_url, database_timeout_seconds=0.3) as stack,
        await connect(database_url) as own,
        await connect(server_url) as admin,
    ):
        flow = await stack.deploy(ONCE)
        name = own.info.dbname
        database = sql.Identifier(name)
        reopened: list[asyncio.Task[None]] = []

        async def reopen() -> None:
            await asyncio.sleep(1.5)  # the outage: longer than the database timeout
            await admin.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(database)
            )

        async def blink() -> None:
            await admin.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(database)
            )
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'sluice-worker' AND datname = %s",
                (name,),
            )
            reopened.append(asyncio.create_task(reopen()))

        server.on("/effect", blink)
        run_id = await started_run(stack, flow["id"], {"url": server.url("/effect")})
        run = await stack.wait_for_status(run_id)
        await reopened[0]

        assert run["status"] == "SUCCEEDED", run["error"]
        assert len(server.hits("/effect")) == 1
        assert step(run, "effect")["attempts"] == 1
