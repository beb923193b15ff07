"""After its database connections are killed (as a restart or pg_terminate_backend does),
a running Sluice answers the next requests as before: no 500, no 503, no lost run."""

from __future__ import annotations

from typing import Any

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
