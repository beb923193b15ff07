"""The run transitions a real app and worker log: accepted, started, paused with what the
run waits for, resumed, succeeded, canceled, a call_flow child's acceptance, and a paused
run the maintenance pass timed out; each line with the run's ids."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from app import logs
from app.settings import LogFormat
from tests.flows.helpers import started_run
from tests.flows.stack import Stack, running_stack
from tests.integration.helpers import eventually

WAITING: dict[str, Any] = {
    "name": "waits",
    "steps": [
        {"id": "ask", "type": "respond", "body": {"approve": "{{ resume_urls.approval }}"}},
        {"id": "approval", "type": "wait_for_webhook"},
    ],
}
CALLER: dict[str, Any] = {
    "name": "caller",
    "steps": [{"id": "child", "type": "call_flow", "flow": "waits"}],
}


class Transitions:
    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    def of(self, run_id: str) -> list[dict[str, Any]]:
        lines = (json.loads(line) for line in self._stream.getvalue().splitlines())
        return [line for line in lines if line.get("run_id") == run_id]

    def kinds(self, run_id: str) -> list[str]:
        return [line["transition"] for line in self.of(run_id)]

    async def until(self, run_id: str, kind: str) -> dict[str, Any]:
        async def logged() -> bool:
            return kind in self.kinds(run_id)

        await eventually(logged)
        return next(line for line in self.of(run_id) if line["transition"] == kind)


@contextmanager
def transitions() -> Iterator[Transitions]:
    runs = logging.getLogger("sluice.runs")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter(LogFormat.JSON))
    runs.addHandler(handler)
    level = runs.level
    runs.setLevel(logging.INFO)
    try:
        yield Transitions(stream)
    finally:
        runs.removeHandler(handler)
        runs.setLevel(level)


async def test_a_paused_run_is_resumed_then_succeeds_and_another_is_canceled(
    stack: Stack,
) -> None:
    flow = await stack.deploy(WAITING)
    with transitions() as logged:
        asked = await stack.trigger(flow["id"], sync=True)
        run_id = asked.headers["x-sluice-run-id"]
        paused = await logged.until(run_id, "paused")
        assert (await stack.client.post(asked.json()["approve"], json={})).status_code == 202
        succeeded = await logged.until(run_id, "succeeded")
        other = await started_run(stack, flow["id"])
        await logged.until(other, "paused")
        assert (await stack.client.post(f"/api/v1/runs/{other}/cancel")).status_code == 200
        canceled = await logged.until(other, "canceled")

    assert logged.kinds(run_id) == ["accepted", "started", "paused", "resumed", "succeeded"]
    assert (paused["waits_for"], paused["step"], paused["flow"]) == ("webhook", "approval", "waits")
    assert {"project", "job_id", "attempt", "worker"} <= set(paused)
    assert succeeded["job_id"] != paused["job_id"]  # the continuation's job
    assert logged.kinds(other) == ["accepted", "started", "paused", "canceled"]
    assert canceled["project"] == stack.project_id


async def test_a_child_is_accepted_by_call_flow_and_timed_out_by_the_maintenance_pass(
    database_url: str,
) -> None:
    async with running_stack(database_url, paused_run_ttl=1) as stack:
        await stack.deploy(WAITING)
        caller = await stack.deploy(CALLER)
        with transitions() as logged:
            parent = await started_run(stack, caller["id"])
            waiting = await logged.until(parent, "paused")
            child = str(waiting["child"])
            timed_out = await logged.until(child, "timed_out")

    assert waiting["waits_for"] == "subflow"
    assert logged.kinds(child)[:3] == ["accepted", "started", "paused"]
    accepted = logged.of(child)[0]
    assert (accepted["flow"], accepted["via"], accepted["parent"]) == ("waits", "call_flow", parent)
    assert timed_out["was"] == "PAUSED"
    assert timed_out["flow"] == "waits"
    assert timed_out["level"] == "warning"
    assert "SLUICE_PAUSED_RUN_TTL" in timed_out["error"]
