"""`sluice serve` and `sluice migrate` as real processes."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg
import pytest

from ops.ports import free_port
from tests.e2e.processes import sluice_env, started

SLUICE = [sys.executable, "-m", "app.cli"]


def wait_for(url: str, status: int, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"sluice exited early ({process.returncode}): {output(process)}")
        try:
            if httpx.get(url, timeout=1).status_code == status:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} never answered {status}")


def output(process: subprocess.Popen[str]) -> str:
    out, _ = process.communicate(timeout=30)
    return out


def serving(env: dict[str, str], *args: str) -> AbstractContextManager[subprocess.Popen[str]]:
    return started([*SLUICE, "serve", *args], env)


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    out = output(process)
    return process.returncode, out


def test_serve_on_a_configured_database_and_stop_on_sigterm(database_url: str) -> None:
    port = free_port()
    env = sluice_env(SLUICE_DATABASE_URL=database_url, SLUICE_PORT=str(port))
    with serving(env) as process:
        wait_for(f"http://127.0.0.1:{port}/ready", 200, process)
        assert httpx.get(f"http://127.0.0.1:{port}/health").json() == {"status": "ok"}
        code, out = stop(process)
    assert code == 0, out
    assert "SIGTERM: stopping" in out


LEADER_HOLDERS = (
    "SELECT count(*) FROM pg_locks"
    " WHERE locktype = 'advisory' AND granted"
    " AND ((classid::bigint << 32) | objid::bigint)"
    " = hashtextextended('sluice:leader:maintenance', 0)"
)


def wait_for_leaders(conn: psycopg.Connection[Any], expected: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = conn.execute(LEADER_HOLDERS).fetchone()
        if row is not None and row[0] == expected:
            return
        time.sleep(0.05)
    raise AssertionError(f"never {expected} maintenance leader(s)")


def test_roles_select_what_the_process_runs(database_url: str) -> None:
    app_port, worker_port = free_port(), free_port()
    base = {"SLUICE_DATABASE_URL": database_url}
    with (
        serving(sluice_env(**base, SLUICE_CONTAINER_TYPE="APP"), "--port", str(app_port)) as app,
        serving(sluice_env(**base, SLUICE_PORT=str(worker_port)), "--role", "worker") as worker,
        psycopg.connect(database_url, autocommit=True) as conn,
    ):
        wait_for(f"http://127.0.0.1:{app_port}/ready", 200, app)
        wait_for_leaders(conn, 1)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{worker_port}/health", timeout=0.5)
        code, out = stop(worker)
        assert code == 0, out
        # Only the worker led: with it gone, the app (still serving) holds nothing.
        wait_for_leaders(conn, 0)
        assert httpx.get(f"http://127.0.0.1:{app_port}/ready").status_code == 200
        code, out = stop(app)
        assert code == 0, out


def test_embedded_database_persists_across_restarts(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    env = sluice_env(SLUICE_DATA_DIR=str(data_dir), SLUICE_PORT=str(port))
    url = f"postgresql://postgres@/sluice?host={data_dir / 'pgdata'}"
    with serving(env) as process:
        wait_for(f"http://127.0.0.1:{port}/ready", 200, process)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO projects (name) VALUES ('kept')")
        code, out = stop(process)
        assert code == 0, out
        assert out.count("sk_") == 1, "the first start prints the default project's key"
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2).close()  # stopped with its last user
    with serving(env) as process:
        wait_for(f"http://127.0.0.1:{port}/ready", 200, process)
        with psycopg.connect(url, autocommit=True) as conn:
            names = conn.execute("SELECT name FROM projects ORDER BY name").fetchall()
            assert names == [("default",), ("kept",)]
        code, out = stop(process)
        assert code == 0, out
        assert "sk_" not in out, "the key is printed only once"


def test_invalid_setting_stops_with_one_line() -> None:
    result = subprocess.run(
        [*SLUICE, "serve"],
        env=sluice_env(SLUICE_LEASE_TTL_SECONDS="soon"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "sluice: invalid configuration: SLUICE_LEASE_TTL_SECONDS (got 'soon'): "
        "Input should be a valid number, unable to parse string as a number"
    ]


def test_migrate_and_check(scratch_database_url: str) -> None:
    env = sluice_env(SLUICE_DATABASE_URL=scratch_database_url)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*SLUICE, "migrate", *args], env=env, capture_output=True, text=True, timeout=60
        )

    before = run("--check")
    assert before.returncode == 1
    assert "schema at nothing; head is" in before.stderr
    assert run().returncode == 0
    after = run("--check")
    assert after.returncode == 0, after.stderr
    assert after.stdout.startswith("schema at head")


def test_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    env = sluice_env(SLUICE_DATABASE_URL=f"postgresql://postgres@/x?host={tmp_path}")
    result = subprocess.run(
        [*SLUICE, "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sluice: cannot reach the database:")


def test_a_busy_port_is_one_line_and_exit_2_and_leaves_no_live_worker(database_url: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = sluice_env(
            SLUICE_DATABASE_URL=database_url,
            SLUICE_PORT=str(port),
            SLUICE_ADMIN_API_KEY="admin-key-of-this-test",
            SLUICE_LOG_LEVEL="WARNING",
        )
        with serving(env) as process:
            out = output(process)

    assert process.returncode == 2, out
    assert out.splitlines() == [
        f"sluice: cannot serve HTTP on 127.0.0.1:{port}: address already in use"
    ]
    with psycopg.connect(database_url) as conn:
        live = conn.execute("SELECT count(*) FROM workers WHERE stopped_at IS NULL").fetchone()
    assert live == (0,)
