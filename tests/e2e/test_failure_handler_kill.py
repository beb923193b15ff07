"""A failure handler starts exactly once when the worker running the failing run is
SIGKILLed around the failure: the run's end and the handler's run commit together or not
at all, and the survivor that runs the job again fails it once more (invariant 3)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from tests.e2e.flow_helpers import probe_server, serve_env, serving, until_status, worker_ready
from tests.flows.stack import FINAL, running_stack
from tests.integration.helpers import connect, fetchval

ALERT: dict[str, Any] = {
    "name": "alert",
    "steps": [{"id": "note", "type": "respond", "body": "{{ trigger.body.run_id }}"}],
}
FRAGILE: dict[str, Any] = {
    "name": "fragile",
    "on_failure": "alert",
    "steps": [
        {"id": "effect", "type": "http", "method": "POST", "url": "{{ trigger.body.url }}"},
        {"id": "boom", "type": "code", "code": "def run(input, ctx):\n    return 1 / 0"},
    ],
}


async def test_a_worker_killed_around_a_failure_starts_its_handler_once(
    database_url: str, tmp_path: Path
) -> None:
    env = serve_env(database_url, "worker", tmp_path / "w")
    async with (
        probe_server() as probe,
        running_stack(database_url, with_worker=False) as stack,
        await connect(database_url) as conn,
    ):
        await stack.deploy(ALERT)
        fragile = await stack.deploy(FRAGILE)
        gate = probe.close_gate("effect")
        with serving(env) as doomed:
            await worker_ready(doomed, conn)
            accepted = await stack.trigger(fragile["id"], {"url": probe.url("effect")})
            assert accepted.status_code == 202
            run_id = accepted.json()["run_id"]
            # The step before the failing one is in flight: kill the worker there.
            await probe.wait_for_hits("effect", 1)
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(timeout=30)
        gate.set()
        with serving(env) as survivor:
            await worker_ready(survivor, conn)
            # Rescued after the lease TTL, run again to its failure, its handler run too.
            assert await until_status(conn, run_id, *FINAL, within=30) == "FAILED"
            handler = await fetchval(
                conn, "SELECT id FROM flow_runs WHERE handles_run = %s", (run_id,)
            )
            assert handler is not None
            assert await until_status(conn, handler, *FINAL, within=30) == "SUCCEEDED"
            survivor.send_signal(signal.SIGTERM)
            assert survivor.wait(timeout=30) == 0
        count = await fetchval(
            conn, "SELECT count(*) FROM flow_runs WHERE handles_run = %s", (run_id,)
        )
        assert count == 1
        reply = await fetchval(
            conn, "SELECT response ->> 'body' FROM flow_runs WHERE id = %s", (handler,)
        )
        assert reply == run_id
        assert probe.hits["effect"] == 2
        assert await fetchval(conn, "SELECT count(*) FROM jobs") == 0
