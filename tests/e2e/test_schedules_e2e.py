"""A schedule served by real processes: an app and two `sluice serve --role worker`, whose
maintenance leader is SIGKILLed mid-window; every tick of the window is one run, once.

This test waits for real ticks (every 2 s for 12 s): it is about real processes and a real
clock, so there is no clock to inject.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime, timedelta
from typing import Any

import httpx2 as httpx
import psycopg

from ops.ports import free_port
from tests.e2e.processes import sluice_env
from tests.e2e.test_serve import LEADER_HOLDERS, serving, wait_for, wait_for_leaders

ADMIN = "admin-secret-for-schedules"
EVERY = 2
WINDOW = timedelta(seconds=12)
FLOW: dict[str, Any] = {
    "trigger": {"type": "schedule", "every": f"{EVERY}s", "catch_up": "all", "overlap": "allow"},
    "steps": [{"id": "r", "type": "respond", "body": "{{ trigger.scheduled_at }}"}],
}


def count(conn: psycopg.Connection[Any], query: str) -> int:
    row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def until(check: Any, within: float, what: str) -> None:
    """Re-check state held by other processes (the database) until it holds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never {what}")
        time.sleep(0.1)


def test_every_tick_fires_once_across_a_killed_leader(database_url: str) -> None:
    port = free_port()
    base = {"SLUICE_DATABASE_URL": database_url, "SLUICE_MAINTENANCE_INTERVAL_SECONDS": "0.5"}
    app_env = sluice_env(**base, SLUICE_CONTAINER_TYPE="APP", SLUICE_ADMIN_API_KEY=ADMIN)
    worker_env = sluice_env(**base, SLUICE_PORT=str(free_port()))
    with (
        serving(app_env, "--port", str(port)) as app,
        serving(worker_env, "--role", "worker") as first,
        psycopg.connect(database_url, autocommit=True) as conn,
    ):
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/ready", 200, app)
        wait_for_leaders(conn, 1)  # the first worker: the only one yet
        with serving(worker_env, "--role", "worker") as second:
            until(lambda: count(conn, "SELECT count(*) FROM workers") == 2, 30, "two workers")
            project = httpx.post(
                f"{url}/api/v1/projects",
                json={"name": "ticking"},
                headers={"Authorization": f"Bearer {ADMIN}"},
            ).json()
            key = {"Authorization": f"Bearer {project['api_key']}"}
            deployed = httpx.put(f"{url}/api/v1/flows/tick", json=FLOW, headers=key)
            assert deployed.status_code == 201, deployed.text
            row = conn.execute("SELECT created_at FROM flow_versions").fetchone()
            assert row is not None
            start: datetime = row[0]
            end = start + WINDOW

            until(lambda: count(conn, "SELECT count(*) FROM flow_runs") >= 2, 15, "two runs")
            first.send_signal(signal.SIGKILL)  # the leader, mid-window
            first.wait(timeout=10)
            until(lambda: second.poll() is None and leaders(conn) == 1, 15, "a new leader")

            ticks = expected_ticks(start, end)
            until(lambda: fired(conn, end) == ticks, 30, "every tick of the window fired")
            assert duplicates(conn) == 0
            shown = httpx.get(f"{url}/api/v1/flows/tick", headers=key).json()["schedules"]
            assert shown[0]["last_run_at"] is not None
            assert second.poll() is None


def leaders(conn: psycopg.Connection[Any]) -> int:
    return count(conn, LEADER_HOLDERS)


def expected_ticks(start: datetime, end: datetime) -> list[datetime]:
    first = int(start.timestamp()) // EVERY * EVERY + EVERY
    return [
        datetime.fromtimestamp(t, start.tzinfo)
        for t in range(first, int(end.timestamp()) + 1, EVERY)
    ]


def fired(conn: psycopg.Connection[Any], end: datetime) -> list[datetime]:
    rows = conn.execute(
        "SELECT (trigger ->> 'scheduled_at')::timestamptz AS at FROM flow_runs"
        " WHERE (trigger ->> 'scheduled_at')::timestamptz <= %s ORDER BY at",
        (end,),
    ).fetchall()
    return [row[0] for row in rows]


def duplicates(conn: psycopg.Connection[Any]) -> int:
    return count(
        conn,
        "SELECT count(*) - count(DISTINCT trigger ->> 'scheduled_at') FROM flow_runs",
    )
