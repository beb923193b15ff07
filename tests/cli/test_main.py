"""What every client command shares: the server's URL and key, from an option or else the
environment, and for each kind of failure its exit status and one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ops.ports import free_port
from tests.cli.helpers import Sluice

IDLE = {
    "name": "idle",
    "steps": [{"id": "noop", "type": "code", "code": "def run(input, ctx):\n    return 1"}],
}


def test_options_win_over_the_environment(
    project_key: str, app_url: str, sluice: Sluice, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SLUICE_API_KEY", "sk_wrong")
    ran = sluice("flow", "list", "--url", app_url, "--api-key", project_key, "--json")
    assert (ran.code, json.loads(ran.out)) == (0, {"flows": []})


def test_key_problems_are_explained(
    app_url: str, sluice: Sluice, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = sluice("flow", "list")
    assert (missing.code, missing.err) == (
        2,
        "sluice: no API key: set SLUICE_API_KEY or pass --api-key\n",
    )
    monkeypatch.setenv("SLUICE_API_KEY", "sk_wrong")
    wrong = sluice("flow", "list")
    assert (wrong.code, wrong.err) == (
        1,
        "sluice: invalid API key (check SLUICE_API_KEY or --api-key)\n",
    )


def test_a_server_that_is_not_running_is_one_line(
    sluice: Sluice, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("SLUICE_API_KEY", "sk_any")
    ran = sluice("flow", "list", "--url", url)
    assert (ran.code, ran.out) == (1, "")
    assert ran.err == (
        f"sluice: cannot reach {url}: connection refused (is `sluice serve` running?)\n"
    )


def test_usage_errors_exit_2(sluice: Sluice, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_API_KEY", "sk_any")
    bad_url = sluice("flow", "list", "--url", "localhost:8000")
    assert (bad_url.code, bad_url.err) == (
        2,
        "sluice: invalid server URL: not an http(s) URL: 'localhost:8000'"
        " (expected http://HOST:PORT)\n",
    )
    with pytest.raises(SystemExit) as exited:
        sluice("runs", "list", "--status", "sleepy")
    assert exited.value.code == 2


def test_client_options_may_come_before_the_command(
    project_key: str, app_url: str, sluice: Sluice
) -> None:
    ran = sluice("--api-key", project_key, "--url", app_url, "--json", "flow", "list")
    assert (ran.code, json.loads(ran.out)) == (0, {"flows": []})
    # What follows the command wins.
    after = sluice(
        "--api-key", "sk_wrong", "flow", "list", "--url", app_url, "--api-key", project_key
    )
    assert after.code == 0, after.err


def test_version(sluice: Sluice) -> None:
    with pytest.raises(SystemExit) as exited:
        sluice("--version")
    assert exited.value.code == 0


def test_a_closed_pipe_ends_quietly(project_key: str, app_url: str) -> None:
    """`sluice … | head`: the reader is gone before sluice writes; no traceback, exit 141."""
    read, write = os.pipe()
    os.close(read)
    env = {**os.environ, "SLUICE_URL": app_url, "SLUICE_API_KEY": project_key}
    try:
        ran = subprocess.run(
            [sys.executable, "-m", "app.cli", "flow", "list", "--json"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
    assert (ran.returncode, ran.stderr) == (141, "")


def test_runs_of_an_unknown_flow_are_a_clear_error(
    project_key: str, app_url: str, sluice: Sluice, tmp_path: Path
) -> None:
    env = ("--url", app_url, "--api-key", project_key)
    unknown = sluice("runs", "list", "--flow", "nosuch", *env)
    assert (unknown.code, unknown.out, unknown.err) == (
        1,
        "",
        "sluice: no flow 'nosuch' in this project\n",
    )
    (tmp_path / "idle.json").write_text(json.dumps(IDLE))
    assert sluice("flow", "deploy", str(tmp_path / "idle.json"), *env).code == 0
    idle = sluice("runs", "list", "--flow", "idle", *env)
    assert (idle.code, idle.err) == (0, "no runs\n")
