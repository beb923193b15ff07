"""The log of a real `sluice serve`: a failing run is one line with its run id and error, in
JSON (every line an object) and in text; outbound URLs' tokens appear nowhere; the access
log names the webhook's run."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from ops.ports import free_port
from tests.e2e.flow_helpers import (
    app_ready,
    deploy,
    new_project,
    probe_server,
    serve_env,
    serving,
    until_status,
    worker_ready,
)
from tests.integration.helpers import connect, fetchval

TOKEN = "tok-9f2c61d0e7b4"

FAILING: dict[str, Any] = {
    "name": "breaks",
    "steps": [
        {"id": "x", "type": "code", "code": "def run(input, ctx):\n    raise ValueError('boom')"}
    ],
}


def calling(name: str, url: str) -> dict[str, Any]:
    return {"name": name, "steps": [{"id": "call", "type": "http", "url": url}]}


def stopped_output(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)
    return out


async def _run_flows(
    database_url: str, tmp_path: Path, log_format: str
) -> tuple[str, dict[str, str]]:
    """Serve with `log_format`, run a failing flow, one calling a URL with a token (it
    answers) and one whose URL with a token refuses; the output and the run ids by flow."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = serve_env(
        database_url,
        "worker_and_app",
        tmp_path,
        SLUICE_PORT=str(port),
        SLUICE_LOG_FORMAT=log_format,
        SLUICE_ACCESS_LOG="true",
    )
    refused = f"http://user:pw@127.0.0.1:{free_port()}/down?token={TOKEN}"
    ids: dict[str, str] = {}
    async with await connect(database_url) as conn, probe_server() as probe:
        project_id, _key = await new_project(conn, f"logs-{log_format}")
        flows = {
            "breaks": await deploy(conn, project_id, FAILING),
            "answers": await deploy(
                conn, project_id, calling("answers", f"{probe.url('ok')}?token={TOKEN}")
            ),
            "refused": await deploy(
                conn, project_id, calling("refused", refused.replace("user:pw@", ""))
            ),
        }
        with serving(env) as process:
            await asyncio.gather(app_ready(process, base), worker_ready(process, conn))
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                for name, flow in flows.items():
                    answer = await client.post(f"/webhooks/{flow}?secret=q-{TOKEN}", json={})
                    assert answer.status_code == 202, answer.text
                    ids[name] = answer.headers["x-sluice-run-id"]
            for name, expected in (
                ("breaks", "FAILED"),
                ("answers", "SUCCEEDED"),
                ("refused", "FAILED"),
            ):
                assert await until_status(conn, ids[name], "SUCCEEDED", "FAILED") == expected
            error = await fetchval(
                conn, "SELECT error FROM flow_runs WHERE id = %s", (ids["refused"],)
            )
            assert TOKEN not in str(error)
            assert "127.0.0.1" in str(error)
            out = stopped_output(process)
    return out, ids


async def test_json_logs_one_object_per_line_and_one_failed_line_per_failing_run(
    database_url: str, tmp_path: Path
) -> None:
    out, ids = await _run_flows(database_url, tmp_path, "json")

    lines = [line for line in out.splitlines() if line.strip()]
    objects = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"timestamp", "level", "logger", "event"} <= set(o) for o in objects)
    failed = [o for o in objects if o.get("transition") == "failed"]
    [broke] = [o for o in failed if o["run_id"] == ids["breaks"]]
    assert broke["error"] == "step 'x' failed: ValueError: boom"
    assert broke["flow"] == "breaks"
    assert broke["level"] == "warning"
    assert {"project", "job_id", "attempt", "worker"} <= set(broke)
    answered = [
        o["transition"] for o in objects if o.get("run_id") == ids["answers"] and "transition" in o
    ]
    assert answered == ["accepted", "started", "succeeded"]
    access = [
        o for o in objects if o["logger"] == "sluice.access" and o["path"].startswith("/webhooks/")
    ]
    assert sorted(o["run_id"] for o in access) == sorted(ids.values())
    assert all(
        o["status"] == 202 and o["method"] == "POST" and o["duration_ms"] >= 0 for o in access
    )
    assert TOKEN not in out


async def test_text_logs_show_the_failed_run_on_one_readable_line(
    database_url: str, tmp_path: Path
) -> None:
    out, ids = await _run_flows(database_url, tmp_path, "text")

    failed = [line for line in out.splitlines() if "run failed" in line and ids["breaks"] in line]
    assert len(failed) == 1, out
    assert " WARNING sluice.runs: run failed run_id=" in failed[0]
    assert "flow=breaks" in failed[0]
    assert "error=\"step 'x' failed: ValueError: boom\"" in failed[0]
    with pytest.raises(json.JSONDecodeError):
        json.loads(failed[0])
    webhook = f"sluice.access: request run_id={ids['answers']} method=POST path=/webhooks/"
    assert webhook in out
    assert TOKEN not in out
