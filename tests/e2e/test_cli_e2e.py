"""The client commands as a user runs them: `sluice …` processes against `sluice serve`."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from app.cli.runs import FINISHED
from ops.ports import free_port
from tests.e2e.processes import sluice_env, started
from tests.e2e.test_serve import SLUICE, serving, stop, wait_for
from tests.web.test_flows_api import HELLO

ADMIN = "admin-secret-for-tests"
BROKEN = {
    "name": "broken",
    "steps": [{"id": "boom", "type": "code", "code": "def run(input, ctx):\n    return 1 / 0"}],
}
SIGNED = {**HELLO, "name": "signed", "trigger": {"type": "webhook", "secret": "s3cret"}}


def sluice(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SLUICE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def first_line(
    process: subprocess.Popen[str], wanted: Callable[[dict[str, Any]], bool], within: float = 30
) -> dict[str, Any]:
    """The first JSON line `process` prints that is `wanted`, read in a thread with a deadline."""
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout

    def read() -> None:
        for line in stdout:
            lines.put(line)
            if wanted(json.loads(line)):
                return

    threading.Thread(target=read, daemon=True).start()
    while True:
        event: dict[str, Any] = json.loads(lines.get(timeout=within))
        if wanted(event):
            return event


def test_deploy_trigger_follow_and_inspect_runs(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_env = sluice_env(
        SLUICE_DATABASE_URL=database_url,
        SLUICE_PORT=str(port),
        SLUICE_ADMIN_API_KEY=ADMIN,
        SLUICE_DATA_DIR=str(tmp_path / "data"),
    )
    env = sluice_env(SLUICE_URL=url, SLUICE_ADMIN_API_KEY=ADMIN)
    (tmp_path / "hello.yaml").write_text(yaml.safe_dump(HELLO))
    (tmp_path / "broken.json").write_text(json.dumps(BROKEN))
    (tmp_path / "signed.yml").write_text(yaml.safe_dump(SIGNED))
    with serving(server_env) as server:
        wait_for(f"{url}/ready", 200, server)
        created = sluice(env, "project", "create", "acme", "--json")
        assert created.returncode == 0, created.stderr
        env["SLUICE_API_KEY"] = json.loads(created.stdout)["api_key"]

        deployed = sluice(env, "flow", "deploy", *(str(p) for p in sorted(tmp_path.glob("*.*"))))
        assert deployed.returncode == 0, deployed.stderr
        assert [row.split()[:3] for row in deployed.stdout.splitlines()[1:]] == [
            ["broken", "1", "new"],
            ["hello", "1", "new"],
            ["signed", "1", "new"],
        ]

        tail = [*SLUICE, "runs", "tail", "--json", "--interval", "0.2"]
        with started(tail, env) as following:
            replied = sluice(env, "trigger", "hello", "--sync", "--data", '{"who": "ada"}')
            assert (replied.returncode, json.loads(replied.stdout)) == (0, {"hello": "ada"})
            signed = sluice(env, "trigger", "signed", "--sync")
            assert (signed.returncode, json.loads(signed.stdout)) == (0, {"hello": "world"})
            failed = sluice(env, "trigger", "broken", "--sync")
            assert failed.returncode == 1
            assert failed.stderr.startswith("sluice: run ")
            assert " ended FAILED: " in failed.stderr
            assert "ZeroDivisionError" in failed.stderr
            accepted = sluice(env, "trigger", "hello")
            assert accepted.returncode == 0, accepted.stderr
            run_id = accepted.stdout.strip()
            done = first_line(following, lambda e: e["id"] == run_id and e["status"] in FINISHED)
            assert done["status"] == "SUCCEEDED"
            following.send_signal(signal.SIGINT)
            assert following.wait(30) == 0

        shown = sluice(env, "runs", "show", run_id)
        assert shown.returncode == 0, shown.stderr
        assert "status    SUCCEEDED" in shown.stdout
        assert [line.split()[:3] for line in shown.stdout.splitlines() if " code " in line] == [
            ["compute", "code", "SUCCEEDED"]
        ]
        listed = sluice(env, "runs", "list", "--flow", "broken", "--json")
        (broken,) = json.loads(listed.stdout)["runs"]
        assert broken["status"] == "FAILED"
        finished = sluice(env, "runs", "cancel", run_id)
        assert finished.returncode == 1
        assert finished.stderr == f"sluice: run {run_id} has already ended (SUCCEEDED)\n"
        retried = sluice(env, "runs", "retry", broken["id"])
        assert retried.returncode == 0, retried.stderr
        assert f"{broken['id']}  QUEUED" in retried.stdout
        code, out = stop(server)
        assert code == 0, out

    refused = sluice(env, "flow", "list")
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == (
        f"sluice: cannot reach {url}: connection refused (is `sluice serve` running?)\n"
    )
